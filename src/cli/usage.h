// The CLI's own words: --version, `tsp help [COMMAND]`, and parse errors that say what was probably meant.
#pragma once

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "cli/common.h"

namespace tsp::cli {

// "tsp 0.1.0 (git 76905fc-dirty)": CMake's project version and `git describe` when CMake was configured.
std::string version_string();

// `tsp help` lists the commands; `tsp help COMMAND` prints that command's options.
void add_help_command(CLI::App& root, std::vector<Command>& cmds);

// The message for a parse error: an unknown command or option names what is closest ("did you mean"),
// anything else is CLI11's own message.
std::string explain_parse_error(const CLI::App& root, int argc, char** argv, const CLI::ParseError& e);

}  // namespace tsp::cli

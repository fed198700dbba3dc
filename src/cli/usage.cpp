#include "cli/usage.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/check.h"
#include "core/suggest.h"
#include "tsp_version.h"

namespace tsp::cli {

namespace {

std::vector<std::string> command_names(const CLI::App& root) {
  std::vector<std::string> names;
  for (const CLI::App* sub : root.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

std::vector<std::string> option_names(const CLI::App& cmd) {
  std::vector<std::string> names;
  for (const CLI::Option* o : cmd.get_options()) {
    for (const std::string& l : o->get_lnames()) names.push_back("--" + l);
    for (const std::string& s : o->get_snames()) names.push_back("-" + s);
  }
  return names;
}

std::string unknown_command(const std::string& word, const std::vector<std::string>& names) {
  return fmt::format("unknown command '{}'{}; the commands are {} ('tsp help COMMAND' explains one)", word,
                     did_you_mean(word, names), fmt::join(names, ", "));
}

}  // namespace

std::string version_string() {
  return fmt::format("tsp {} (git {})", TSP_VERSION, TSP_GIT_DESCRIBE);
}

void add_help_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand("help", "list the commands, or explain one: tsp help COMMAND");
  auto topic = std::make_shared<std::string>();
  app->add_option("command", *topic, "the command to explain");
  cmds.push_back({app, [&root, topic](Communicator& world) {
                    std::string text;
                    if (topic->empty()) {
                      // Not root.help(): once a subcommand (this one) is parsed, that prints its help.
                      text =
                          root.get_formatter()->make_help(&root, root.get_name(), CLI::AppFormatMode::Normal);
                    } else {
                      const std::vector<std::string> names = command_names(root);
                      if (std::find(names.begin(), names.end(), *topic) == names.end() || *topic == "help")
                        throw UsageError(unknown_command(*topic, names));
                      text = root.get_subcommand(*topic)->help(root.get_name());
                    }
                    if (world.rank() == 0) std::printf("%s", text.c_str());
                    return 0;
                  }});
}

std::string explain_parse_error(const CLI::App& root, int argc, char** argv, const CLI::ParseError& e) {
  const std::vector<std::string> names = command_names(root);
  int i = 1;
  while (i < argc && argv[i][0] == '-') ++i;  // the root has only flags (--help, --version)
  if (i == argc)
    return fmt::format(
        "a command is required: {} ('tsp help' lists them, 'tsp --version' prints the version)",
        fmt::join(names, ", "));
  const std::string cmd = argv[i];
  if (std::find(names.begin(), names.end(), cmd) == names.end()) return unknown_command(cmd, names);
  const CLI::App* sub = root.get_subcommand(cmd);
  for (int j = i + 1; j < argc; ++j) {
    const std::string arg = argv[j];
    // Long options, and single-letter short ones (not negative numbers such as --seed -1).
    const bool is_long = arg.size() > 2 && arg[0] == '-' && arg[1] == '-';
    const bool is_short =
        arg.size() == 2 && arg[0] == '-' && std::isalpha(static_cast<unsigned char>(arg[1]));
    if (!is_long && !is_short) continue;
    const std::string name = arg.substr(0, arg.find('='));
    if (sub->get_option_no_throw(name) == nullptr)
      return fmt::format("tsp {} has no option {}{}; 'tsp help {}' lists its options", cmd, name,
                         did_you_mean(name, option_names(*sub)), cmd);
  }
  return fmt::format("{} ('tsp help {}' lists the options)", e.what(), cmd);
}

}  // namespace tsp::cli

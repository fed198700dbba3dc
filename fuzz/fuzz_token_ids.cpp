// Token-id files (tsp eval --tokens: one sequence per line of whitespace-separated ids) on hostile input.
#include <sstream>

#include "cli/common.h"
#include "core/check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    try {
      for (int32_t id : tsp::cli::parse_token_ids(line, "fuzz"))
        if (id < 0) __builtin_trap();
    } catch (const tsp::Error&) {
    }
  }
  return 0;
}

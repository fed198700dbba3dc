// Token-id text (eval --tokens files, generate --prompt-tokens); its own file so that the fuzz target
// (fuzz/fuzz_token_ids.cpp) links it alone.
#include <climits>
#include <sstream>

#include "cli/common.h"
#include "core/check.h"

namespace tsp::cli {

std::vector<int32_t> parse_token_ids(const std::string& text, const std::string& what) {
  std::vector<int32_t> out;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    TSP_REQUIRE(used == word.size() && v >= 0 && v <= INT32_MAX,
                "{}: '{}' is not a token id (expected a non-negative integer)", what, word);
    out.push_back(int32_t(v));
  }
  return out;
}

}  // namespace tsp::cli

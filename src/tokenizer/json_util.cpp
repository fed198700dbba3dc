#include "tokenizer/json_util.h"

#include "tokenizer/regex.h"

namespace tsp::tokjson {

std::string pattern_of(const json& j, const char* where) {
  if (j.is_object() && j.contains("String") && j["String"].is_string())
    return Regex::escape(j["String"].get<std::string>());
  if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) return j["Regex"].get<std::string>();
  throw UsageError(
      fmt::format("tokenizer.json: {} pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}, got {}",
                  where, j.dump().substr(0, 200)));
}

}  // namespace tsp::tokjson

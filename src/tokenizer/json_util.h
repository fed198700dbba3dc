// Reading tokenizer.json fields: a missing or mistyped field is a usage error naming the component and field.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "core/check.h"

namespace tsp::tokjson {

using json = nlohmann::json;

inline std::string type_of(const json& j, const char* kind) {
  TSP_REQUIRE(j.is_object() && j.contains("type") && j["type"].is_string(),
              "tokenizer.json: a {} without a string \"type\" field: {}", kind, j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const json::exception&) {
    throw UsageError(
        fmt::format("tokenizer.json: field \"{}\" has the wrong type in {}", key, j.dump().substr(0, 200)));
  }
}

template <class T>
T get(const json& j, const char* key) {
  TSP_REQUIRE(j.contains(key) && !j[key].is_null(), "tokenizer.json: field \"{}\" is missing in {}", key,
              j.dump().substr(0, 200));
  return get_or<T>(j, key, T{});
}

// {"String": "x"} or {"Regex": "x"} -> a PCRE2 pattern (a String is matched literally).
std::string pattern_of(const json& j, const char* where);

}  // namespace tsp::tokjson

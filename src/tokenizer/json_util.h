// Reading tokenizer.json fields: a missing or mistyped field is a usage error naming the component and field.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <type_traits>

#include "core/check.h"
#include "core/json_integer.h"

namespace tsp::tokjson {

using json = nlohmann::json;

inline std::string type_of(const json& j, const char* kind) {
  TSP_REQUIRE(j.is_object() && j.contains("type") && j["type"].is_string(),
              "tokenizer.json: a {} without a string \"type\" field: {}", kind, j.dump().substr(0, 200));
  return j["type"].get<std::string>();
}

// `v` as the integer type T: a JSON integer within T's range. (nlohmann's get<T>() converts a fractional or
// out-of-range number with a cast, which is undefined behaviour for values T cannot hold: 1e31 as size_t.)
template <class T>
T integer_of(const json& v, const char* key) {
  return json_integer<T>(v, "tokenizer.json", key);
}

template <class T>
T get_or(const json& j, const char* key, T fallback) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) return integer_of<T>(j[key], key);
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

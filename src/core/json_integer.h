// Reading a JSON number as a C++ integer type without undefined behaviour. nlohmann's get<T>() converts a
// fractional or out-of-range number with a plain cast (1e30 as int64_t is undefined behaviour, and UBSan
// aborts on it), so every reader of a file a user or a crash may have written goes through here instead:
// the value must be a JSON integer within T's range, or the error names the field, the range and the value.
#pragma once

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <type_traits>

#include "core/check.h"

namespace tsp {

// `v` as T when it is a JSON integer T can hold; nullopt for anything else (floats, strings, out of range).
template <class T>
std::optional<T> json_integer_if(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  using L = std::numeric_limits<T>;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > uint64_t(L::max())) return std::nullopt;
    return T(u);
  }
  if (v.is_number_integer()) {
    const int64_t s = v.get<int64_t>();
    if (s < 0 ? (!L::is_signed || s < int64_t(L::min())) : uint64_t(s) > uint64_t(L::max()))
      return std::nullopt;
    return T(s);
  }
  return std::nullopt;
}

// `v` as T, or a UsageError "<where>: "<key>" must be an integer in lo..hi, got <v>".
template <class T>
T json_integer(const nlohmann::json& v, std::string_view where, std::string_view key) {
  const std::optional<T> r = json_integer_if<T>(v);
  TSP_REQUIRE(r.has_value(), "{}: \"{}\" must be an integer in {}..{}, got {}", where, key,
              std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), v.dump().substr(0, 100));
  return *r;
}

// Field `key` of object `j` as T: required (a missing field is an error naming it) or, with a fallback,
// optional (absent or null gives the fallback).
template <class T>
T json_integer_at(const nlohmann::json& j, const char* key, std::string_view where) {
  TSP_REQUIRE(j.is_object() && j.contains(key), "{}: missing required field \"{}\"", where, key);
  return json_integer<T>(j.at(key), where, key);
}
template <class T>
T json_integer_at(const nlohmann::json& j, const char* key, std::string_view where, T fallback) {
  if (!j.is_object() || !j.contains(key) || j.at(key).is_null()) return fallback;
  return json_integer<T>(j.at(key), where, key);
}

}  // namespace tsp

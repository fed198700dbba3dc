#include "model/json_fields.h"

#include <limits>

#include "core/check.h"

namespace tsp::json_fields {

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where) {
  TSP_REQUIRE(j.contains(key), "{}: missing required field \"{}\"", where, key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_number_integer(), "{}: field \"{}\" must be an integer, got {}", where, key, v.dump());
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    TSP_REQUIRE(u <= uint64_t(std::numeric_limits<int64_t>::max()), "{}: field \"{}\" = {} is too large",
                where, key, u);
    return int64_t(u);
  }
  return v.get<int64_t>();
}

double get_number(const nlohmann::json& j, const char* key, const std::string& where) {
  TSP_REQUIRE(j.contains(key), "{}: missing required field \"{}\"", where, key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_number(), "{}: field \"{}\" must be a number, got {}", where, key, v.dump());
  return v.get<double>();
}

bool get_bool(const nlohmann::json& j, const char* key, const std::string& where) {
  TSP_REQUIRE(j.contains(key), "{}: missing required field \"{}\"", where, key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_boolean(), "{}: field \"{}\" must be true or false, got {}", where, key, v.dump());
  return v.get<bool>();
}

std::string get_string(const nlohmann::json& j, const char* key, const std::string& where) {
  TSP_REQUIRE(j.contains(key), "{}: missing required field \"{}\"", where, key);
  const auto& v = j.at(key);
  TSP_REQUIRE(v.is_string(), "{}: field \"{}\" must be a string, got {}", where, key, v.dump());
  return v.get<std::string>();
}

}  // namespace tsp::json_fields

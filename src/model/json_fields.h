// Typed reads of config.json fields with errors that name the field (shared by the model config, its
// rope_scaling object and the architecture switches). `where` prefixes every message, e.g. "config.json" or
// "config.json: rope_scaling".
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>

namespace tsp::json_fields {

// HF writes some optional fields as explicit nulls (e.g. "head_dim": null); treat those like absent.
inline bool present(const nlohmann::json& j, const char* key) {
  return j.is_object() && j.contains(key) && !j.at(key).is_null();
}

int64_t get_int(const nlohmann::json& j, const char* key, const std::string& where = "config.json");
double get_number(const nlohmann::json& j, const char* key, const std::string& where = "config.json");
bool get_bool(const nlohmann::json& j, const char* key, const std::string& where = "config.json");
std::string get_string(const nlohmann::json& j, const char* key, const std::string& where = "config.json");

}  // namespace tsp::json_fields

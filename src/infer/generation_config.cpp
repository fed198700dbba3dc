#include "infer/generation_config.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>

#include "core/check.h"

namespace tsp {

namespace {

// eos_token_id of one JSON file; nullopt when the file or the field is absent.
std::optional<std::vector<int32_t>> read_eos(const std::filesystem::path& file) {
  if (!std::filesystem::is_regular_file(file)) return std::nullopt;
  std::ifstream f(file);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", file.string(), e.what()));
  }
  if (!j.is_object() || !j.contains("eos_token_id")) return std::nullopt;
  const nlohmann::json& e = j["eos_token_id"];
  std::vector<int32_t> ids;
  auto id = [&](const nlohmann::json& v) {
    TSP_REQUIRE(v.is_number_integer() && v.get<int64_t>() >= 0 && v.get<int64_t>() <= INT32_MAX,
                "{}: eos_token_id must be a token id, a list of token ids or null, got {}", file.string(),
                e.dump());
    ids.push_back(v.get<int32_t>());
  };
  if (e.is_null()) return ids;
  if (e.is_array())
    for (const auto& v : e) id(v);
  else
    id(e);
  return ids;
}

}  // namespace

std::vector<int32_t> eos_token_ids(const std::string& model_dir) {
  const std::filesystem::path d(model_dir);
  if (auto g = read_eos(d / "generation_config.json")) return *g;
  if (auto c = read_eos(d / "config.json")) return *c;
  return {};
}

}  // namespace tsp

#include "train/train_state.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/check.h"
#include "core/file_checksum.h"
#include "core/json_integer.h"

namespace tsp {

std::string train_state_json(const TrainState& s) {
  nlohmann::json j = {{"step", s.step},
                      {"data_position", s.data_position},
                      {"seed", s.seed},
                      {"optimizer_step", s.optimizer_step},
                      {"skipped_nonfinite", s.skipped_nonfinite}};
  if (!s.data.is_null()) j["data"] = s.data;
  if (!s.product_paths.is_null()) j["product_paths"] = s.product_paths;
  return j.dump(2) + "\n";
}

TrainState parse_train_state(const std::string& text, const std::string& where) {
  TrainState s;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    TSP_REQUIRE(j.is_object(), "{}: expected a JSON object", where);
    s.step = json_integer_at<int64_t>(j, "step", where);
    s.data_position = json_integer_at<int64_t>(j, "data_position", where);
    s.seed = json_integer_at<uint64_t>(j, "seed", where);
    s.optimizer_step = json_integer_at<int64_t>(j, "optimizer_step", where);
    s.skipped_nonfinite = json_integer_at<int64_t>(j, "skipped_nonfinite", where, 0);
    if (j.contains("data")) {
      s.data = j.at("data");
      TSP_REQUIRE(s.data.is_object() && s.data.contains("kind") && s.data.at("kind").is_string(),
                  "{}: 'data' must be an object with a string 'kind'", where);
    }
    if (j.contains("product_paths")) {
      s.product_paths = j.at("product_paths");
      TSP_REQUIRE(s.product_paths.is_object() && s.product_paths.contains("products") &&
                      s.product_paths.at("products").is_array(),
                  "{}: 'product_paths' must be an object with a 'products' array", where);
    }
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("{}: {}", where, e.what()));
  }
  TSP_REQUIRE(
      s.step >= 0 && s.data_position >= 0 && s.optimizer_step >= 0 && s.skipped_nonfinite >= 0 &&
          s.optimizer_step + s.skipped_nonfinite <= s.step,
      "{}: inconsistent counters (step {}, data_position {}, optimizer_step {}, skipped_nonfinite {})", where,
      s.step, s.data_position, s.optimizer_step, s.skipped_nonfinite);
  return s;
}

TrainState read_train_state(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  TSP_REQUIRE(static_cast<bool>(f), "cannot read {}: {}", path, std::strerror(errno));
  return parse_train_state(std::string(std::istreambuf_iterator<char>(f), {}), path);
}

void write_train_state(const std::string& path, const TrainState& s) {
  std::ofstream f(path, std::ios::binary);
  f << train_state_json(s);
  f.close();
  TSP_REQUIRE(static_cast<bool>(f), "cannot write {}: {}", path, std::strerror(errno));
}

nlohmann::json text_data_source(const std::string& path) {
  const FileDigest d = file_digest(path);
  return {{"kind", "text"},
          {"path", std::filesystem::absolute(path).lexically_normal().string()},
          {"bytes", d.size},
          {"crc32", crc32_hex(d.crc32)}};
}

}  // namespace tsp

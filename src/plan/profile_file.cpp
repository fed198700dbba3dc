// Device profiles from a JSON file, for hardware the built-in profiles do not describe (`tsp plan --device
// my_gpu.json`). Fields: the DeviceProfile members (docs/planning.md, "Your own device").
#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>

#include "core/check.h"
#include "plan/plan.h"

namespace tsp::plan {

namespace {

double positive(const nlohmann::json& j, const std::string& path, const char* key, bool required = true,
                double fallback = 0) {
  if (!j.contains(key)) {
    TSP_REQUIRE(!required, "device profile {}: field \"{}\" is missing", path, key);
    return fallback;
  }
  TSP_REQUIRE(j.at(key).is_number(), "device profile {}: \"{}\" must be a number, got {}", path, key,
              j.at(key).dump());
  const double v = j.at(key).get<double>();
  TSP_REQUIRE(v > 0 && std::isfinite(v), "device profile {}: \"{}\" must be positive, got {}", path, key, v);
  return v;
}

}  // namespace

bool is_profile_file(const std::string& device) {
  return device.ends_with(".json") || std::filesystem::is_regular_file(device);
}

DeviceProfile load_device_profile(const std::string& path) {
  std::ifstream f(path);
  TSP_REQUIRE(static_cast<bool>(f), "--device {}: cannot read the device profile file", path);
  nlohmann::json j;
  try {
    f >> j;
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("device profile {}: not valid JSON ({})", path, e.what()));
  }
  TSP_REQUIRE(j.is_object(), "device profile {}: expected a JSON object", path);
  DeviceProfile d;
  d.name = j.value("name", std::filesystem::path(path).stem().string());
  d.description = j.value("description", std::string("device profile from ") + path);
  d.source = j.value("source", path);
  d.matmul_flops_fp32 = positive(j, path, "matmul_flops_fp32");
  d.matmul_flops_bf16 = positive(j, path, "matmul_flops_bf16", false, d.matmul_flops_fp32);
  d.matmul_efficiency = positive(j, path, "matmul_efficiency", false, 1.0);
  TSP_REQUIRE(d.matmul_efficiency <= 1,
              "device profile {}: \"matmul_efficiency\" is a fraction of peak in (0, 1], got {}", path,
              d.matmul_efficiency);
  d.link_bytes_per_s = positive(j, path, "link_bytes_per_s");
  d.dp_bytes_per_s = positive(j, path, "dp_bytes_per_s", false, d.link_bytes_per_s);
  d.latency_s = j.contains("latency_s") ? positive(j, path, "latency_s") : 0.0;
  d.memory_bytes_per_s = j.contains("memory_bytes_per_s") ? positive(j, path, "memory_bytes_per_s") : 0.0;
  TSP_REQUIRE(j.contains("memory_bytes"), "device profile {}: field \"memory_bytes\" is missing", path);
  const nlohmann::json& m = j.at("memory_bytes");
  if (m.is_string()) {
    try {
      d.memory_bytes = parse_bytes(m.get<std::string>());
    } catch (const UsageError& e) {
      throw UsageError(fmt::format("device profile {}: \"memory_bytes\": {}", path, e.what()));
    }
  } else {
    d.memory_bytes = int64_t(positive(j, path, "memory_bytes"));
  }
  return d;
}

const DeviceProfile& device_profile_from_file(const std::string& path) {
  // Loaded once per path and kept, so callers can hold the reference like a built-in profile's.
  static std::mutex mu;
  static std::map<std::string, DeviceProfile> loaded;
  std::lock_guard<std::mutex> lock(mu);
  auto it = loaded.find(path);
  if (it == loaded.end()) it = loaded.emplace(path, load_device_profile(path)).first;
  return it->second;
}

}  // namespace tsp::plan

#include "train/manifest.h"

#include <algorithm>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "core/file_checksum.h"
#include "core/json_integer.h"

namespace tsp {

std::string manifest_json(const Manifest& m) {
  nlohmann::json files = nlohmann::json::array();
  for (const auto& f : m.files)
    files.push_back({{"path", f.path}, {"size", f.size}, {"crc32", crc32_hex(f.crc32)}});
  nlohmann::json j = {
      {"format", "tsp-checkpoint-manifest"}, {"version", 1}, {"step", m.step}, {"files", files}};
  return j.dump(2) + "\n";
}

Manifest parse_manifest(const std::string& text, const std::string& where) {
  Manifest m;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    TSP_REQUIRE(j.is_object(), "{}: expected a JSON object", where);
    TSP_REQUIRE(j.value("format", std::string()) == "tsp-checkpoint-manifest",
                "{}: not a tsp checkpoint manifest (\"format\" must be \"tsp-checkpoint-manifest\")", where);
    TSP_REQUIRE(json_integer_at<int64_t>(j, "version", where) == 1,
                "{}: manifest version {} is not supported (only 1)", where, j.at("version").dump());
    m.step = json_integer_at<int64_t>(j, "step", where);
    TSP_REQUIRE(m.step >= 0, "{}: step {} is negative", where, m.step);
    std::set<std::string> seen;
    for (const auto& e : j.at("files")) {
      ManifestEntry f;
      f.path = e.at("path").get<std::string>();
      f.size = json_integer_at<uint64_t>(e, "size", where);
      const std::string crc = e.at("crc32").get<std::string>();
      // Paths stay inside the checkpoint: relative, '/'-separated components that are neither empty, "." nor
      // ".." (split by hand: std::filesystem::path collapses "a//b").
      bool inside = !f.path.empty() && f.path[0] != '/' && f.path.find('\\') == std::string::npos &&
                    f.path.find('\0') == std::string::npos;
      for (size_t p = 0; inside && p <= f.path.size();) {
        const size_t stop = std::min(f.path.find('/', p), f.path.size());
        const std::string part = f.path.substr(p, stop - p);
        inside = !part.empty() && part != "." && part != "..";
        p = stop + 1;
      }
      TSP_REQUIRE(inside, "{}: file path '{}' is not a plain relative path inside the checkpoint", where,
                  f.path);
      TSP_REQUIRE(seen.insert(f.path).second, "{}: file '{}' is listed twice", where, f.path);
      char* end = nullptr;
      const unsigned long long v =
          crc.size() == 10 && crc.starts_with("0x") ? std::strtoull(crc.c_str() + 2, &end, 16) : 0;
      TSP_REQUIRE(end == crc.c_str() + crc.size() && v <= 0xffffffffull,
                  "{}: crc32 '{}' of '{}' is not 0x followed by 8 hex digits", where, crc, f.path);
      f.crc32 = uint32_t(v);
      m.files.push_back(std::move(f));
    }
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("{}: {}", where, e.what()));
  }
  return m;
}

std::string step_dir_name(int64_t step) {
  return fmt::format("step-{:06d}", step);
}

bool parse_step_name(const std::string& name, int64_t* step) {
  if (!name.starts_with("step-") || name.size() < 11 || name.size() > 24) return false;
  int64_t v = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + (name[i] - '0');
  }
  if (step) *step = v;
  return true;
}

}  // namespace tsp

#include "model/safetensors_index.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/atomic_file.h"
#include "core/check.h"

namespace fs = std::filesystem;

namespace tsp {

namespace {

// An index larger than this is not an index (a 1000-layer model's is a few hundred KB).
constexpr uint64_t kMaxIndexBytes = 100ull << 20;

std::string upper(std::string s) {
  for (char& c : s) c = char(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

int64_t parse_shard_size(const std::string& text) {
  const std::string bad = fmt::format(
      "--max-shard-size \"{}\": expected a size such as 5GB, 500MB, 2GiB or a number of bytes", text);
  size_t i = 0;
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  const size_t num_begin = i;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string num = text.substr(num_begin, i - num_begin);
  while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  while (!unit.empty() && std::isspace(static_cast<unsigned char>(unit.back()))) unit.pop_back();
  TSP_REQUIRE(!num.empty() && std::count(num.begin(), num.end(), '.') <= 1 && num != ".", "{}", bad);
  const double value = std::stod(num);
  // transformers' convert_file_size_to_int: KB/MB/GB/TB are powers of 10, KiB/MiB/GiB/TiB powers of 2, and a
  // decimal unit spelled with a lower-case final "b" counts bits.
  const std::string u = upper(unit);
  double mult = 0;
  if (u.empty() || u == "B") mult = 1;
  static const std::pair<const char*, double> kUnits[] = {{"KIB", 0x1p10}, {"MIB", 0x1p20}, {"GIB", 0x1p30},
                                                          {"TIB", 0x1p40}, {"KB", 1e3},     {"MB", 1e6},
                                                          {"GB", 1e9},     {"TB", 1e12}};
  for (const auto& [name, m] : kUnits) {
    if (u == name) mult = m;
  }
  TSP_REQUIRE(mult > 0, "{} (unknown unit \"{}\")", bad, unit);
  if (u.size() == 2 && unit.back() == 'b') mult /= 8;
  const double bytes = std::floor(value * mult);
  TSP_REQUIRE(bytes >= 1 && bytes < 0x1p62, "{} (must be at least 1 byte)", bad);
  return int64_t(bytes);
}

std::vector<int> plan_shards(const std::vector<int64_t>& tensor_bytes, int64_t max_shard_bytes) {
  TSP_REQUIRE(max_shard_bytes > 0, "the maximum shard size must be positive, got {}", max_shard_bytes);
  // huggingface_hub's split_state_dict_into_shards_factory, shard for shard: a tensor above the maximum is
  // appended as its own shard at once (before the shard still being filled).
  std::vector<std::vector<size_t>> shards;
  std::vector<size_t> current;
  int64_t current_bytes = 0;
  for (size_t i = 0; i < tensor_bytes.size(); ++i) {
    const int64_t b = tensor_bytes[i];
    if (b > max_shard_bytes) {
      shards.push_back({i});
      continue;
    }
    if (current_bytes + b > max_shard_bytes) {
      shards.push_back(std::move(current));
      current.clear();
      current_bytes = 0;
    }
    current.push_back(i);
    current_bytes += b;
  }
  if (!current.empty()) shards.push_back(std::move(current));
  std::vector<int> shard(tensor_bytes.size());
  for (size_t k = 0; k < shards.size(); ++k)
    for (size_t i : shards[k]) shard[i] = int(k);
  return shard;
}

std::string shard_file_name(const std::string& stem, int shard, int num_shards) {
  return fmt::format("{}-{:05d}-of-{:05d}.safetensors", stem, shard + 1, num_shards);
}

bool is_shard_file_name(const std::string& stem, const std::string& f) {
  // STEM-ddddd-of-ddddd.safetensors
  const std::string tail = ".safetensors";
  if (f.size() != stem.size() + 15 + tail.size() || f.compare(0, stem.size(), stem) != 0) return false;
  const std::string mid = f.substr(stem.size(), 15);
  for (size_t i = 0; i < mid.size(); ++i) {
    const bool digit = std::isdigit(static_cast<unsigned char>(mid[i])) != 0;
    if ((i == 0 && mid[i] != '-') || (i >= 1 && i <= 5 && !digit) ||
        (i >= 6 && i <= 9 && mid[i] != "-of-"[i - 6]) || (i >= 10 && !digit))
      return false;
  }
  return f.compare(f.size() - tail.size(), tail.size(), tail) == 0;
}

std::string single_file_name(const std::string& stem) {
  return stem + ".safetensors";
}

std::string index_file_name(const std::string& stem) {
  return stem + ".safetensors.index.json";
}

// ---- reading ----------------------------------------------------------------------------------------------

bool SafetensorsSetReader::exists(const std::string& dir, const std::string& stem) {
  return fs::exists(fs::path(dir) / single_file_name(stem)) ||
         fs::exists(fs::path(dir) / index_file_name(stem));
}

SafetensorsSetReader::SafetensorsSetReader(const std::string& dir, const std::string& stem)
    : dir_(dir), stem_(stem) {
  const fs::path single = fs::path(dir) / single_file_name(stem);
  const fs::path index = fs::path(dir) / index_file_name(stem);
  if (fs::exists(single) || !fs::exists(index)) {
    TSP_REQUIRE(fs::exists(single), "{} holds neither {} nor {}", dir, single_file_name(stem),
                index_file_name(stem));
    files_.push_back(std::make_unique<SafetensorsReader>(single.string()));
    for (const std::string& n : files_[0]->names()) where_[n] = files_[0].get();
    return;
  }
  sharded_ = true;
  const std::string ipath = index.string();
  std::error_code ec;
  const uint64_t size = fs::file_size(index, ec);
  TSP_REQUIRE(!ec, "cannot read {}: {}", ipath, ec.message());
  TSP_REQUIRE(size <= kMaxIndexBytes, "{} is {} bytes: too large for a safetensors index (limit {})", ipath,
              size, kMaxIndexBytes);
  std::ifstream in(index, std::ios::binary);
  TSP_REQUIRE(in.good(), "cannot open {}", ipath);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("{} is not valid JSON: {}", ipath, e.what()));
  }
  TSP_REQUIRE(j.is_object() && j.contains("weight_map") && j.at("weight_map").is_object(),
              "{}: expected an object with a \"weight_map\" object (tensor name -> shard file)", ipath);
  const auto& wm = j.at("weight_map");
  TSP_REQUIRE(!wm.empty(), "{}: \"weight_map\" is empty", ipath);
  std::map<std::string, SafetensorsReader*> by_file;
  for (const auto& [name, f] : wm.items()) {
    TSP_REQUIRE(f.is_string(), "{}: weight_map entry of '{}' must be a file name, got {}", ipath, name,
                f.dump());
    const std::string file = f.get<std::string>();
    // Shards sit beside the index; a path would let an index point anywhere on the machine.
    TSP_REQUIRE(!file.empty() && file.find('/') == std::string::npos && file != "." && file != "..",
                "{}: weight_map entry of '{}' names \"{}\", which is not a file name in the same directory",
                ipath, name, file);
    auto it = by_file.find(file);
    if (it == by_file.end()) {
      const fs::path p = fs::path(dir) / file;
      TSP_REQUIRE(fs::exists(p), "{} names shard {} (for tensor '{}'), which does not exist", ipath,
                  p.string(), name);
      files_.push_back(std::make_unique<SafetensorsReader>(p.string()));
      it = by_file.emplace(file, files_.back().get()).first;
    }
    TSP_REQUIRE(it->second->has(name), "{} maps tensor '{}' to {}, which does not hold it", ipath, name,
                it->second->path());
    where_[name] = it->second;
  }
}

std::string SafetensorsSetReader::where_str() const {
  return sharded_ ? (fs::path(dir_) / index_file_name(stem_)).string()
                  : (fs::path(dir_) / single_file_name(stem_)).string();
}

const SafetensorsReader& SafetensorsSetReader::file_of(const std::string& name) const {
  auto it = where_.find(name);
  TSP_REQUIRE(it != where_.end(), "{}: missing tensor '{}' (the set has {} tensors)", where_str(), name,
              where_.size());
  return *it->second;
}

const TensorInfo& SafetensorsSetReader::info(const std::string& name) const {
  return file_of(name).info(name);
}

std::vector<std::string> SafetensorsSetReader::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : where_) out.push_back(n);
  return out;
}

uint64_t SafetensorsSetReader::total_file_bytes() const {
  uint64_t n = 0;
  for (const auto& f : files_) n += f->file_size();
  return n;
}

ReadStats SafetensorsSetReader::stats() const {
  ReadStats s;
  for (const auto& f : files_) s += f->stats();
  return s;
}

// ---- writing ----------------------------------------------------------------------------------------------

SafetensorsSetWriter::SafetensorsSetWriter(std::string dir, std::string stem, int64_t max_shard_bytes)
    : dir_(std::move(dir)), stem_(std::move(stem)), max_shard_bytes_(max_shard_bytes) {
  TSP_REQUIRE(max_shard_bytes_ > 0, "the maximum shard size must be positive, got {}", max_shard_bytes_);
}

void SafetensorsSetWriter::set_metadata(const std::string& key, const std::string& value) {
  TSP_CHECK(!planned_, "safetensors set '{}': metadata '{}' set after writing began", stem_, key);
  metadata_[key] = value;
}

void SafetensorsSetWriter::declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  TSP_CHECK(!planned_, "safetensors set '{}': tensor '{}' declared after writing began", stem_, name);
  TSP_CHECK(!shard_index_.count(name), "safetensors set '{}': tensor '{}' declared twice", stem_, name);
  shard_index_[name] = -1;
  pending_.push_back({name, dtype, shape});
}

void SafetensorsSetWriter::plan() {
  if (planned_) return;
  planned_ = true;
  std::vector<int64_t> bytes;
  for (const auto& p : pending_) {
    int64_t n = dtype_size(p.dtype);
    for (int64_t d : p.shape) n *= d;
    bytes.push_back(n);
    total_size_ += n;
  }
  const std::vector<int> shard = plan_shards(bytes, max_shard_bytes_);
  const int n = pending_.empty() ? 1 : 1 + *std::max_element(shard.begin(), shard.end());
  shards_.resize(size_t(n));
  for (int k = 0; k < n; ++k)
    shards_[size_t(k)].file = n == 1 ? single_file_name(stem_) : shard_file_name(stem_, k, n);
  for (size_t i = 0; i < pending_.size(); ++i) {
    shards_[size_t(shard[i])].tensors.push_back(i);
    shard_index_[pending_[i].name] = shard[i];
  }
}

int SafetensorsSetWriter::shard_of(const std::string& name) {
  plan();
  auto it = shard_index_.find(name);
  TSP_CHECK(it != shard_index_.end(), "safetensors set '{}': tensor '{}' was not declared", stem_, name);
  return it->second;
}

SafetensorsWriter& SafetensorsSetWriter::writer(int k) {
  Shard& s = shards_[size_t(k)];
  TSP_CHECK(!s.done, "safetensors set '{}': {} is complete; nothing more can be written to it", stem_,
            s.file);
  if (!s.writer) {
    s.writer = std::make_unique<SafetensorsWriter>((fs::path(dir_) / s.file).string());
    for (const auto& [key, value] : metadata_) s.writer->set_metadata(key, value);
    for (size_t i : s.tensors) s.writer->declare(pending_[i].name, pending_[i].dtype, pending_[i].shape);
  }
  return *s.writer;
}

void SafetensorsSetWriter::close_if_complete(int k) {
  Shard& s = shards_[size_t(k)];
  if (!s.writer->complete()) return;
  s.writer->finish();
  s.writer.reset();
  s.done = true;
}

void SafetensorsSetWriter::write_zeros(const std::string& name) {
  const int k = shard_of(name);
  writer(k).write_zeros(name);
  close_if_complete(k);
}

std::vector<std::string> SafetensorsSetWriter::file_names() {
  plan();
  std::vector<std::string> out;
  for (const Shard& s : shards_) out.push_back(s.file);
  return out;
}

void SafetensorsSetWriter::finish() {
  plan();
  // Shards not yet complete: finish() names the first missing tensor (an empty shard completes here).
  for (size_t k = 0; k < shards_.size(); ++k) {
    if (shards_[k].done) continue;
    writer(int(k)).finish();
    shards_[k].writer.reset();
    shards_[k].done = true;
  }
  const fs::path index = fs::path(dir_) / index_file_name(stem_);
  const bool sharded = shards_.size() > 1;
  if (sharded) {
    nlohmann::json wm = nlohmann::json::object();
    int64_t params = 0;
    for (const auto& p : pending_) {
      wm[p.name] = shards_[size_t(shard_index_.at(p.name))].file;
      int64_t n = 1;
      for (int64_t d : p.shape) n *= d;
      params += n;
    }
    const nlohmann::json j = {{"metadata", {{"total_size", total_size_}, {"total_parameters", params}}},
                              {"weight_map", wm}};
    write_file_atomic(index.string(), j.dump(2) + "\n");
  }
  // Files of an earlier save of this stem that the new set does not use would confuse a reader (a stale
  // single file is preferred over the index; stale shards waste space).
  std::set<std::string> keep;
  for (const Shard& s : shards_) keep.insert(s.file);
  if (sharded) keep.insert(index_file_name(stem_));
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec)) {
    const std::string f = e.path().filename().string();
    const bool ours =
        f == single_file_name(stem_) || f == index_file_name(stem_) || is_shard_file_name(stem_, f);
    if (ours && !keep.count(f)) fs::remove(e.path(), ec);
  }
  sync_directory(dir_);
}

}  // namespace tsp

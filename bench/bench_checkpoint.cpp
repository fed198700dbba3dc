// What a rank touches and holds while a checkpoint is loaded or saved (docs/checkpoints.md).
//
//   bench_checkpoint make --config FILE --dir DIR [--dtype bf16] [--max-shard-size 5GB]
//       an HF checkpoint of the config's shape with every tensor a hole in sparse files (reads as zeros):
//       a 7B-shaped checkpoint costs no disk space and the bytes read are what is measured
//   bench_checkpoint load --dir DIR --ranks D --rank P
//       loads rank P's shard of D (TSP/Megatron sharding) after evicting the files from the page cache, and
//       reports the bytes copied, the pages the kernel brought in (mincore), the time, and the memory
//   mpirun -np D bench_checkpoint save --config FILE --dir DIR [--optimizer] [--max-shard-size 5GB]
//       a collective save of a D-way sharded model, with rank 0's tracked peak and VmHWM while saving
//
// Each mode prints one JSON object per line.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"
#include "core/memory.h"
#include "model/checkpoint.h"
#include "model/checkpoint_io.h"
#include "model/config.h"
#include "model/params.h"
#include "model/safetensors_index.h"
#include "train/optimizer.h"

using namespace tsp;
namespace fs = std::filesystem;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int64_t rss_bytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return -1;
}

// The files of both sets in a checkpoint directory.
std::vector<std::string> set_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const char* stem : {"model", "optimizer"}) {
    if (!SafetensorsSetReader::exists(dir, stem)) continue;
    SafetensorsSetReader s(dir, stem);
    for (const auto& f : s.files()) out.push_back(f->path());
  }
  return out;
}

// Drops the files from the page cache (they are clean: written and fsynced, or holes); returns the pages
// still resident afterwards (0 when the eviction worked).
int64_t evict(const std::vector<std::string>& files);

// Pages of the files in the page cache now.
int64_t resident_pages(const std::vector<std::string>& files) {
  const int64_t ps = ::sysconf(_SC_PAGESIZE);
  int64_t n = 0;
  for (const std::string& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    TSP_CHECK(fd >= 0, "cannot open {}", f);
    const size_t size = size_t(fs::file_size(f));
    void* m = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
    TSP_CHECK(m != MAP_FAILED, "cannot map {}", f);
    std::vector<unsigned char> v((size + size_t(ps) - 1) / size_t(ps));
    TSP_CHECK(::mincore(m, size, v.data()) == 0, "mincore {}", f);
    for (unsigned char b : v) n += b & 1;
    ::munmap(m, size);
    ::close(fd);
  }
  return n;
}

int64_t evict(const std::vector<std::string>& files) {
  for (const std::string& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY);
    TSP_CHECK(fd >= 0, "cannot open {}", f);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
  return resident_pages(files);
}

// The largest D <= 64 the config shards into (to list its tensors without allocating the whole model).
int widest_shard(const ModelConfig& c) {
  for (int D : {64, 32, 16, 8, 4, 2}) {
    try {
      (void)ShardSpec::folded(c, D, 0, "tsp");
      return D;
    } catch (const UsageError&) {
    }
  }
  return 1;
}

int make(const std::map<std::string, std::string>& a) {
  const ModelConfig c = load_config(a.at("--config"));
  const std::string dir = a.at("--dir");
  const DType dtype = a.count("--dtype") && a.at("--dtype") == "f32" ? DType::F32 : DType::BF16;
  const int64_t max_shard = parse_shard_size(a.count("--max-shard-size") ? a.at("--max-shard-size") : "5GB");
  fs::create_directories(dir);
  nlohmann::json cfg = c.to_json();
  cfg["torch_dtype"] = torch_dtype_name(dtype);
  std::ofstream(fs::path(dir) / "config.json") << cfg.dump(2) << "\n";
  ModelParams<float> views(c, ShardSpec::folded(c, widest_shard(c), 0, "tsp"), false);
  SafetensorsSetWriter w(dir, "model", max_shard);
  w.set_metadata("format", "pt");
  std::vector<std::string> names;
  for (const auto& b : views.blocks())
    for (const TensorView& v : b.views) {
      w.declare(v.name, dtype, v.full_shape);
      names.push_back(v.name);
    }
  for (const std::string& n : names) w.write_zeros(n);
  w.finish();
  std::printf("%s\n", nlohmann::json({{"mode", "make"},
                                      {"dir", dir},
                                      {"files", w.file_names()},
                                      {"tensor_bytes", w.total_size()},
                                      {"parameters", c.parameter_count()}})
                          .dump()
                          .c_str());
  return 0;
}

int load(const std::map<std::string, std::string>& a) {
  const std::string dir = a.at("--dir");
  const int D = std::stoi(a.at("--ranks")), p = std::stoi(a.at("--rank"));
  const ModelConfig c = checkpoint_config(dir);
  const std::vector<std::string> files = set_files(dir);
  int64_t file_bytes = 0, file_pages = 0;
  const int64_t ps = ::sysconf(_SC_PAGESIZE);
  for (const std::string& f : files) {
    file_bytes += int64_t(fs::file_size(f));
    file_pages += (int64_t(fs::file_size(f)) + ps - 1) / ps;
  }
  ModelParams<float> params(c, D == 1 ? ShardSpec::full(c) : ShardSpec::folded(c, D, p, "tsp"), false);
  const int64_t param_bytes = params.local_numel() * int64_t(sizeof(float));
  const int64_t left_resident = evict(files);
  const bool hwm_reset = reset_vm_hwm();
  const int64_t rss_before = rss_bytes();
  mem_reset_peaks();
  const int64_t tracked_before = mem_stats().current_total;
  const auto t0 = std::chrono::steady_clock::now();
  const CheckpointReadStats s = load_checkpoint<float>(dir, params, nullptr, nullptr);
  const double sec = seconds_since(t0);
  const int64_t cached = resident_pages(files);
  nlohmann::json j = {{"mode", "load"},
                      {"ranks", D},
                      {"rank", p},
                      {"file_bytes", file_bytes},
                      {"copied_bytes", s.model.bytes},
                      {"copied_fraction", double(s.model.bytes) / double(file_bytes)},
                      {"pages_counted", s.model.pages},
                      {"pages_cached_after", cached},
                      {"pages_left_before", left_resident},
                      {"page_fraction", double(cached) / double(file_pages)},
                      {"seconds", sec},
                      {"param_bytes", param_bytes},
                      {"tracked_peak_above_params", mem_stats().peak_total - tracked_before},
                      {"rss_before", rss_before},
                      {"vm_hwm", vm_hwm_bytes()},
                      {"vm_hwm_reset", hwm_reset},
                      {"hwm_above_rss_before", vm_hwm_bytes() - rss_before}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

int save(const std::map<std::string, std::string>& a) {
  Communicator world = Communicator::world();
  const int D = world.size(), p = world.rank();
  const ModelConfig c = load_config(a.at("--config"));
  const std::string dir = a.at("--dir");
  CheckpointWriteOptions o;
  o.max_shard_bytes = parse_shard_size(a.count("--max-shard-size") ? a.at("--max-shard-size") : "5GB");
  const bool with_opt = a.count("--optimizer") != 0;  // a flag: present or not
  ModelParams<float> params(c, D == 1 ? ShardSpec::full(c) : ShardSpec::folded(c, D, p, "tsp"), false);
  for (int b = 0; b < params.num_blocks(); ++b)
    for (int64_t i = 0; i < params.value(b).size(); i += 1024) params.value(b)[i] = float(i % 977) * 1e-3f;
  std::unique_ptr<AdamW<float>> opt;
  if (with_opt) opt = std::make_unique<AdamW<float>>(params, kernels::AdamWHyper{});
  int64_t largest = 0;
  for (const auto& b : params.blocks())
    for (const TensorView& v : b.views) {
      int64_t n = 1;
      for (int64_t d : v.full_shape) n *= d;
      largest = std::max(largest, n * int64_t(sizeof(float)));
    }
  const TrainState st{1, 1, 1};
  if (p == 0) fs::create_directories(fs::path(dir).parent_path());
  world.barrier();
  const bool hwm_reset = reset_vm_hwm();
  const int64_t rss_before = rss_bytes();
  mem_reset_peaks();
  const int64_t tracked_before = mem_stats().current_total;
  const auto t0 = std::chrono::steady_clock::now();
  save_checkpoint<float>(dir, params, opt.get(), &st, &world, o);
  const double sec = seconds_since(t0);
  std::vector<int64_t> mine = {mem_stats().peak_total - tracked_before, vm_hwm_bytes() - rss_before,
                               rss_before};
  std::vector<int64_t> all(size_t(3 * D));
  world.all_gather("bench.gather", mine.data(), all.data(), 3);
  if (p == 0) {
    int64_t written = 0;
    for (const std::string& f : set_files(dir)) written += int64_t(fs::file_size(f));
    nlohmann::json ranks = nlohmann::json::array();
    for (int r = 0; r < D; ++r)
      ranks.push_back({{"rank", r},
                       {"tracked_peak_above_params", all[size_t(3 * r)]},
                       {"hwm_above_rss_before", all[size_t(3 * r + 1)]},
                       {"rss_before", all[size_t(3 * r + 2)]}});
    const nlohmann::json j = {{"mode", "save"},
                              {"ranks", D},
                              {"optimizer", with_opt},
                              {"bytes_written", written},
                              {"seconds", sec},
                              {"largest_tensor_bytes", largest},
                              {"model_bytes", c.parameter_count() * int64_t(sizeof(float))},
                              {"chunk_bytes", o.chunk_bytes},
                              {"vm_hwm_reset", hwm_reset},
                              {"per_rank", ranks}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: bench_checkpoint make|load|save OPTIONS (see the top of bench_checkpoint.cpp)\n");
    return 2;
  }
  const std::string mode = argv[1];
  std::map<std::string, std::string> a;
  for (int i = 2; i < argc; ++i) {
    std::string k = argv[i];
    // A flag, or an option with its value (GCC 12 misreads a[k] = "1" as an overlapping copy).
    const bool flag = k == "--optimizer";
    a.emplace(k, flag || i + 1 >= argc ? std::string() : std::string(argv[++i]));
  }
  try {
    if (mode == "save") {
      Communicator::init(&argc, &argv);
      const int rc = save(a);
      Communicator::finalize();
      return rc;
    }
    return mode == "make" ? make(a) : mode == "load" ? load(a) : 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_checkpoint: %s\n", e.what());
    return 1;
  }
}

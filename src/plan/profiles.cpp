// Device profiles and the step-time projection. The numbers and where they come from are listed in
// docs/planning.md; peak rates are the vendors' dense (no sparsity) figures, scaled by an achieved fraction.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <string>
#include <vector>

#include <cblas.h>

#include "core/check.h"
#include "core/memory.h"
#include "core/sgemm_rate.h"
#include "core/threading.h"
#include "plan/plan.h"

namespace tsp::plan {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

// This machine, read at run time: its cores (sched_getaffinity), its memory (MemTotal, or a smaller cgroup
// limit) and the single-core cblas_sgemm rate measured now. Bandwidth and latency are not measured here
// (tsp bench --write-device-profile does): they are machine.md's figures for ranks on one host.
DeviceProfile this_machine() {
  DeviceProfile d;
  d.name = "cpu-this-machine";
  d.host_cores = cpu_count(affinity_mask());
  d.memory_bytes = host_memory_bytes();
  if (d.memory_bytes <= 0) d.memory_bytes = int64_t(kGiB);  // no /proc: a placeholder the header states
  const int saved = openblas_get_num_threads();
  openblas_set_num_threads(1);
  d.matmul_flops_fp32 = sgemm_flops_per_s(384, 4);
  openblas_set_num_threads(saved);
  d.matmul_flops_bf16 = d.matmul_flops_fp32;  // no bf16 GEMM path on CPUs: bf16 runs at the fp32 rate
  d.matmul_efficiency = 0.75;
  d.link_bytes_per_s = 3e9;
  d.dp_bytes_per_s = 3e9;
  d.latency_s = 5e-6;
  d.memory_bytes_per_s = 10e9;  // assumed, as before (decode's memory-bandwidth term)
  d.description =
      fmt::format("this machine: {} core{}, {:.1f} GiB, ranks sharing both (one rank per core or more)",
                  d.host_cores, d.host_cores == 1 ? "" : "s", double(d.memory_bytes) / kGiB);
  d.source = fmt::format(
      "measured when tsp plan ran: cblas_sgemm {:.1f} GFLOP/s on one core (n = 384), sched_getaffinity, "
      "MemTotal (or the cgroup limit); assumed: efficiency 0.75 (docs/performance.md), 3 GB/s and 5 us "
      "between ranks (shared/docs/machine.md; tsp bench --write-device-profile measures them)",
      d.matmul_flops_fp32 / 1e9);
  return d;
}

const std::vector<DeviceProfile>& profiles() {
  static const std::vector<DeviceProfile> p = [] {
    std::vector<DeviceProfile> v;
    DeviceProfile mi300x{
        "mi300x",
        "AMD Instinct MI300X (8 per node, Infinity Fabric mesh; 400 Gb/s NIC per GPU)",
        "AMD CDNA3 datasheet: 1307.4 TFLOP/s bf16 dense, 163.4 TFLOP/s fp32 matrix; memory: the "
        "206,141,652,992 B (192.0 GiB) rocm-smi reports as VRAM Total; 7 x 64 GB/s Infinity "
        "Fabric links per GPU; bandwidths are effective (~70% of link peak)",
        163.4e12,
        1307.4e12,
        0.40,
        300e9,
        40e9,
        10e-6,
        int64_t(206141652992),
        5.3e12};
    DeviceProfile h100{
        "h100",
        "NVIDIA H100 SXM5 80GB (8 per node, NVLink 4 / NVSwitch; 400 Gb/s NIC per GPU)",
        "NVIDIA H100 datasheet: 989.4 TFLOP/s bf16 dense, 66.9 TFLOP/s fp32; memory: the 81,559 MiB "
        "(79.6 GiB) nvidia-smi reports for 'H100 80GB HBM3' (the CUDA context and allocator take a "
        "few hundred MiB of it); NVLink 450 GB/s per direction; bandwidths are effective (~80% of "
        "peak)",
        66.9e12,
        989.4e12,
        0.45,
        360e9,
        40e9,
        10e-6,
        int64_t(81559) * 1024 * 1024,
        3.35e12};
    v.push_back(mi300x);
    v.push_back(h100);
    return v;
  }();
  return p;
}

}  // namespace

std::vector<std::string> device_profile_names() {
  std::vector<std::string> n;
  for (const auto& p : profiles()) n.push_back(p.name);
  n.push_back("cpu-this-machine");
  return n;
}

const DeviceProfile& device_profile(const std::string& name) {
  for (const auto& p : profiles())
    if (p.name == name) return p;
  if (name == "cpu-this-machine") {
    static const DeviceProfile here = this_machine();  // measured once per process
    return here;
  }
  if (is_profile_file(name)) return device_profile_from_file(name);
  throw UsageError(fmt::format("unknown --device '{}' (allowed: {}, or a JSON profile file)", name,
                               fmt::join(device_profile_names(), ", ")));
}

int64_t parse_bytes(const std::string& text) {
  const std::string hint = "use a number with an optional unit, e.g. 80GB, 192GiB, 512MiB or 1e9 (bytes)";
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    throw UsageError(fmt::format("--memory-budget '{}' is not a size: {}", text, hint));
  }
  std::string unit;
  for (char ch : text.substr(used))
    if (!std::isspace(static_cast<unsigned char>(ch)))
      unit += char(std::tolower(static_cast<unsigned char>(ch)));
  static const std::array<std::pair<const char*, double>, 10> units{{{"", 1},
                                                                     {"b", 1},
                                                                     {"kb", 1e3},
                                                                     {"mb", 1e6},
                                                                     {"gb", 1e9},
                                                                     {"tb", 1e12},
                                                                     {"kib", 1024.0},
                                                                     {"mib", 1024.0 * 1024},
                                                                     {"gib", kGiB},
                                                                     {"tib", kGiB * 1024}}};
  for (const auto& [name, scale] : units)
    if (unit == name) {
      TSP_REQUIRE(std::isfinite(v) && v > 0 && v * scale < 9e18, "--memory-budget '{}' must be positive: {}",
                  text, hint);
      return int64_t(std::llround(v * scale));
    }
  throw UsageError(fmt::format("--memory-budget '{}' has an unknown unit '{}': {}", text, unit, hint));
}

DeviceProfile device_for_ranks(const DeviceProfile& dev, int ranks) {
  if (dev.host_cores <= 0) return dev;
  TSP_REQUIRE(ranks > 0, "ranks must be positive, got {}", ranks);
  DeviceProfile d = dev;
  const double cores_per_rank =
      ranks <= dev.host_cores ? double(dev.host_cores / ranks) : double(dev.host_cores) / double(ranks);
  d.matmul_flops_fp32 = dev.matmul_flops_fp32 * cores_per_rank;
  d.matmul_flops_bf16 = dev.matmul_flops_bf16 * cores_per_rank;
  d.memory_bytes = dev.memory_bytes / ranks;
  d.description = fmt::format("{}; per rank of {}: {:.3g} core{}, {:.1f} GiB", dev.description, ranks,
                              cores_per_rank, cores_per_rank == 1 ? "" : "s", double(d.memory_bytes) / kGiB);
  return d;
}

Projection project(const Prediction& p, const RunShape& shape, const Policy& policy,
                   const DeviceProfile& dev) {
  Projection r;
  const double rate = policy.weight_bytes == 2   ? dev.matmul_flops_bf16
                      : policy.weight_bytes == 8 ? dev.matmul_flops_fp32 / 2
                                                 : dev.matmul_flops_fp32;
  r.compute_s = p.flops / (rate * dev.matmul_efficiency);
  double hidden = 0;  // weight traffic that can be prefetched behind compute
  for (const auto& [phase, labels] : p.comm)
    for (const auto& [label, e] : labels) {
      const double t = double(e.recv_bytes) / (e.dp_axis ? dev.dp_bytes_per_s : dev.link_bytes_per_s) +
                       double(e.calls) * dev.latency_s;
      r.comm_s += t;
      (e.overlappable ? hidden : r.exposed_comm_s) += t;
    }
  r.step_s_no_overlap = r.compute_s + r.comm_s;
  r.step_s_overlap = std::max(r.compute_s, hidden) + r.exposed_comm_s;
  const double tokens = double(p.layout.dp) * double(shape.micro_batch) * double(shape.seq_len);
  r.tokens_per_s_no_overlap = tokens / r.step_s_no_overlap;
  r.tokens_per_s = tokens / r.step_s_overlap;
  return r;
}

}  // namespace tsp::plan

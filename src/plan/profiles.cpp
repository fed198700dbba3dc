// Device profiles and the step-time projection. The numbers and where they come from are listed in
// docs/planning.md; peak rates are the vendors' dense (no sparsity) figures, scaled by an achieved fraction.
#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>

#include "core/check.h"
#include "plan/plan.h"

namespace tsp::plan {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

const std::array<DeviceProfile, 3>& profiles() {
  static const std::array<DeviceProfile, 3> p{{
      {"mi300x", "AMD Instinct MI300X (8 per node, Infinity Fabric mesh; 400 Gb/s NIC per GPU)",
       "AMD CDNA3 datasheet: 1307.4 TFLOP/s bf16 dense, 163.4 TFLOP/s fp32 matrix, 192 GB HBM3, 7 x 64 GB/s "
       "Infinity Fabric links per GPU; bandwidths are effective (~70% of link peak)",
       163.4e12, 1307.4e12, 0.40, 300e9, 40e9, 10e-6, int64_t(192 * kGiB), 5.3e12},
      {"h100", "NVIDIA H100 SXM5 80GB (8 per node, NVLink 4 / NVSwitch; 400 Gb/s NIC per GPU)",
       "NVIDIA H100 datasheet: 989.4 TFLOP/s bf16 dense, 66.9 TFLOP/s fp32, 80 GB HBM3, NVLink 450 GB/s per "
       "direction; bandwidths are effective (~80% of peak)",
       66.9e12, 989.4e12, 0.45, 360e9, 40e9, 10e-6, int64_t(80e9), 3.35e12},
      {"cpu-this-machine", "this 2-core AMD EPYC VM, one MPI rank per core (OpenMPI shared memory)",
       "shared/docs/machine.md: fp32 SGEMM ~97 GFLOP/s per core (OpenBLAS Haswell kernels), no bf16 GEMM "
       "path; 4 ranks on 2 cores: Allgather/Bcast 3-5 GB/s, Allreduce 1.2-1.5 GB/s; docs/performance.md: "
       "the model step reaches ~75% of SGEMM; memory: 23.5 GiB (free -b)",
       97e9, 97e9, 0.75, 3e9, 3e9, 5e-6, int64_t(23.5 * kGiB), 10e9},
  }};
  return p;
}

}  // namespace

std::vector<std::string> device_profile_names() {
  std::vector<std::string> n;
  for (const auto& p : profiles()) n.push_back(p.name);
  return n;
}

const DeviceProfile& device_profile(const std::string& name) {
  for (const auto& p : profiles())
    if (p.name == name) return p;
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

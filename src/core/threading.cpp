#include "core/threading.h"

#include <cblas.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <filesystem>

#include "core/check.h"

namespace tsp {

namespace {

ThreadPlan& applied() {
  static ThreadPlan p = [] {
    ThreadPlan d;
    d.source = "not configured";
    d.wait_policy = "";
    return d;
  }();
  return p;
}

// The leading count of an OMP_NUM_THREADS-style value ("4", or a per-level list "4,2").
int parse_thread_count(const std::string& var, const std::string& value) {
  const std::string head = value.substr(0, value.find(','));
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(head, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  TSP_REQUIRE(used == head.size() && !head.empty() && v >= 1 && v <= 4096,
              "{}='{}' is not a thread count (expected a positive integer; unset it to let tsp choose)", var,
              value);
  return int(v);
}

}  // namespace

CpuMask affinity_mask() {
  cpu_set_t set;
  CPU_ZERO(&set);
  CpuMask m((CPU_SETSIZE + 63) / 64, 0);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) {
    // No affinity information: every online CPU.
    const long n = std::max(1L, sysconf(_SC_NPROCESSORS_ONLN));
    for (long c = 0; c < n && c < CPU_SETSIZE; ++c) m[size_t(c / 64)] |= uint64_t(1) << (c % 64);
    return m;
  }
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) m[size_t(c / 64)] |= uint64_t(1) << (c % 64);
  return m;
}

int cpu_count(const CpuMask& m) {
  int n = 0;
  for (uint64_t w : m) n += std::popcount(w);
  return n;
}

int ranks_sharing_cpus(const std::vector<CpuMask>& node_masks, int me) {
  TSP_CHECK(me >= 0 && size_t(me) < node_masks.size(), "ranks_sharing_cpus: rank {} of {}", me,
            node_masks.size());
  const CpuMask& mine = node_masks[size_t(me)];
  int n = 0;
  for (const CpuMask& other : node_masks) {
    bool overlap = false;
    for (size_t w = 0; w < std::min(mine.size(), other.size()) && !overlap; ++w)
      overlap = (mine[w] & other[w]) != 0;
    n += overlap ? 1 : 0;
  }
  return std::max(1, n);
}

ThreadPlan choose_threads(const ThreadInputs& in) {
  TSP_REQUIRE(in.cli_threads >= 0, "--threads must be >= 1 (or left out to let tsp choose), got {}",
              in.cli_threads);
  ThreadPlan p;
  p.cores = std::max(1, in.cores);
  p.ranks_sharing = std::max(1, in.ranks_sharing);
  p.local_ranks = std::max(1, in.local_ranks);
  if (in.cli_threads > 0) {
    p.threads = in.cli_threads;
    p.source = "--threads";
  } else if (!in.omp_env.empty()) {
    p.threads = parse_thread_count("OMP_NUM_THREADS", in.omp_env);
    p.source = "OMP_NUM_THREADS";
  } else if (!in.blas_env.empty()) {
    p.threads = parse_thread_count("OPENBLAS_NUM_THREADS", in.blas_env);
    p.source = "OPENBLAS_NUM_THREADS";
  } else {
    // Ranks that share cores split them; a rank bound to its own cores uses all of them.
    p.threads = std::max(1, p.cores / p.ranks_sharing);
    p.source = "auto";
  }
  return p;
}

void apply_threads(const ThreadPlan& plan) {
  ThreadPlan p = plan;
  const char* policy = std::getenv("OMP_WAIT_POLICY");
  p.wait_policy = policy && *policy ? policy : "libgomp default (spins, then sleeps)";
  omp_set_num_threads(p.threads);
  openblas_set_num_threads(p.threads);
  applied() = p;
}

ThreadPlan apply_single_process_threads() {
  ThreadInputs in;
  in.cores = cpu_count(affinity_mask());
  const char* omp = std::getenv("OMP_NUM_THREADS");
  const char* blas = std::getenv("OPENBLAS_NUM_THREADS");
  in.omp_env = omp ? omp : "";
  in.blas_env = blas ? blas : "";
  apply_threads(choose_threads(in));
  return thread_plan();
}

const ThreadPlan& thread_plan() {
  return applied();
}

std::string thread_summary(const ThreadPlan& p) {
  std::string why = p.source == "auto"
                        ? fmt::format("auto: {} core{}, {} rank{} on them", p.cores, p.cores == 1 ? "" : "s",
                                      p.ranks_sharing, p.ranks_sharing == 1 ? "" : "s")
                        : fmt::format("from {}", p.source);
  return fmt::format("{} thread{} per rank (OpenMP + OpenBLAS; {})", p.threads, p.threads == 1 ? "" : "s",
                     why);
}

nlohmann::json thread_json(const ThreadPlan& p) {
  return {{"openmp", p.threads},
          {"blas", p.threads},
          {"source", p.source},
          {"cores", p.cores},
          {"ranks_sharing_cores", p.ranks_sharing},
          {"ranks_on_node", p.local_ranks},
          {"openmp_wait_policy", p.wait_policy},
          {"oversubscribed", p.oversubscribed()}};
}

void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;  // the user's choice, or this process was re-executed already
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  // The binary's real path, not /proc/self/exe: the process name (ps, top, pkill, a scheduler's view) is the
  // file name exec'd, and must stay "tsp" rather than become "exe".
  std::error_code ec;
  const std::string self = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  execv(ec || self.empty() ? "/proc/self/exe" : self.c_str(), argv);
  // Only reached when the exec failed: libgomp keeps its default, and the run header says so.
  unsetenv("OMP_WAIT_POLICY");
}

}  // namespace tsp

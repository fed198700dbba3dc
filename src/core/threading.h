// Threads per rank: how many OpenMP threads and OpenBLAS threads each process computes with.
//
// tsp chooses them itself (docs/performance.md, "Threads per rank"): the CPUs this process may run on
// (sched_getaffinity, so taskset, cgroups, srun and mpirun bindings count), divided among the ranks of the
// same node whose CPU sets overlap this one's. `--threads N` overrides the choice, and so does an
// OMP_NUM_THREADS (or OPENBLAS_NUM_THREADS) the user exported. OpenMP and OpenBLAS get the same number and
// never run on top of each other: GEMMs outside OpenMP regions use the BLAS threads, and code inside an
// OpenMP team calls BLAS single-threaded (kernels/attention.cpp), so at most N threads of a rank compute at
// any moment.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsp {

// One CPU set as 64-bit words (bit c of word c/64 = CPU c), as sched_getaffinity reports it.
using CpuMask = std::vector<uint64_t>;

CpuMask affinity_mask();  // this process' CPUs
int cpu_count(const CpuMask& m);

// Of the CPU sets of the ranks on one node, how many overlap rank `me`'s (itself included): those ranks
// compete for the same cores. Unbound ranks all see every core; ranks bound to disjoint cores share none.
int ranks_sharing_cpus(const std::vector<CpuMask>& node_masks, int me);

struct ThreadInputs {
  int cores = 1;          // CPUs in this rank's affinity mask
  int ranks_sharing = 1;  // ranks on this node competing for those CPUs (this one included)
  int local_ranks = 1;    // ranks on this node
  int cli_threads = 0;    // --threads (0: not given)
  std::string omp_env;    // OMP_NUM_THREADS as exported ("" when unset)
  std::string blas_env;   // OPENBLAS_NUM_THREADS as exported ("" when unset)
};

struct ThreadPlan {
  int threads = 1;  // OpenMP team size and OpenBLAS threads of this rank
  int cores = 1, ranks_sharing = 1, local_ranks = 1;
  std::string source;       // "auto", "--threads", "OMP_NUM_THREADS" or "OPENBLAS_NUM_THREADS"
  std::string wait_policy;  // OpenMP's idle-thread policy in effect (see use_passive_openmp_wait)
  // More computing threads on this rank's cores than cores: threads * ranks_sharing > cores with threads > 1.
  bool oversubscribed() const { return threads > 1 && int64_t(threads) * ranks_sharing > cores; }
};

// The choice: --threads, else the exported variables, else max(1, cores / ranks_sharing). UsageError for a
// --threads below 1 or an unparsable variable (naming it).
ThreadPlan choose_threads(const ThreadInputs& in);

// Sets OpenMP's and OpenBLAS's thread counts; thread_plan() returns what was applied (for run headers).
void apply_threads(const ThreadPlan& plan);
const ThreadPlan& thread_plan();

// For one-process tools (the benchmarks): the choice for this process alone on its CPUs, applied.
ThreadPlan apply_single_process_threads();

// "2 threads per rank (OpenMP + OpenBLAS; auto: 2 cores, 1 rank on them)"
std::string thread_summary(const ThreadPlan& plan);
nlohmann::json thread_json(const ThreadPlan& plan);

// libgomp reads OMP_WAIT_POLICY once, when it is loaded; its default makes idle team threads spin, which on a
// shared or oversubscribed machine starves the thread every other one waits for (a 2-thread step ran 5-16x
// slower than 1 thread). Call first thing in main(): when the user has not chosen a policy, this sets
// OMP_WAIT_POLICY=PASSIVE and re-executes the program once (same pid, same arguments) so that libgomp sees
// it. If the exec fails the program carries on with libgomp's default.
void use_passive_openmp_wait(char** argv);

}  // namespace tsp

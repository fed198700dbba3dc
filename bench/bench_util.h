// What the product benchmarks share (bench_products, bench_blocked_weights, bench_small_products): the
// process set up as tsp sets itself up, the hidden sizes of the command line, and a best-of timing loop.
#pragma once

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "core/threading.h"
#include "kernels/onednn_matmul.h"

namespace tsp::bench {

// OpenMP's passive wait and the process's thread choice, as tsp does (core/threading.h), and the heap kept
// (fresh pages cost ~14 us each on this VM: docs/machine.md); prints the threads and oneDNN's ISA.
inline ThreadPlan set_up_process(char** argv) {
  use_passive_openmp_wait(argv);
  const ThreadPlan threads = apply_single_process_threads();
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  std::printf("threads: %s | %s\n", thread_summary(threads).c_str(), kernels::onednn::summary().c_str());
  return threads;
}

// argv[first..] as hidden sizes; 128 512 1024 without any.
inline std::vector<int64_t> hidden_sizes(int argc, char** argv, int first) {
  std::vector<int64_t> hs;
  for (int i = first; i < argc; ++i) hs.push_back(std::atoll(argv[i]));
  if (hs.empty()) hs = {128, 512, 1024};
  return hs;
}

// The best of at least min_reps timed calls after one warm-up (primitive creation, first touch), repeated
// until min_total seconds have passed or max_reps calls were timed.
template <class F>
double best_seconds(F&& f, int min_reps = 3, int max_reps = 20, double min_total = 0.3) {
  using Clock = std::chrono::steady_clock;
  f();
  double best = 1e30, total = 0;
  for (int r = 0; r < max_reps && (r < min_reps || total < min_total); ++r) {
    const auto t0 = Clock::now();
    f();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::min(best, s);
    total += s;
  }
  return best;
}

}  // namespace tsp::bench

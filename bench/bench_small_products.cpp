// Where does a oneDNN product stop paying for its OpenMP team? Under OMP_WAIT_POLICY=passive (what tsp sets,
// core/threading.h) the team's other threads sleep between parallel regions, and waking them costs tens of
// microseconds — more than a decode step's product of a few rows takes on one thread. This times the bf16
// product Y = X·Wᵀ (bf16 inputs, fp32 output, as --matmul-precision bf16 runs it) on the calling thread alone
// and on the whole team, per row count and shape, and prints the ratio: the figure behind
// kernels::onednn's one-thread bound (docs/performance.md, "Small products").
//
// Usage: bench_small_products [h ...] (default 128 512 1024); rows 1, 8, 32, 128, 512, 2048; shapes h->h,
// h->4h, 4h->h.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bench_util.h"
#include "kernels/bf16.h"
#include "kernels/onednn_matmul.h"

int main(int argc, char** argv) {
  tsp::bench::set_up_process(argv);
  const std::vector<int64_t> hs = tsp::bench::hidden_sizes(argc, argv, 1);
  if (!tsp::kernels::onednn::bf16_supported()) {
    std::printf("oneDNN has no bf16 product on this CPU: nothing to measure\n");
    return 0;
  }
  const int team = omp_get_max_threads();
  tsp::kernels::onednn::set_one_thread_flops(0);  // measure the team itself, whatever the product's size
  std::printf("%-22s %6s %10s | %10s %10s | %s\n", "shape", "rows", "MFLOP", "1 thread", "team", "team / 1");
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (int64_t h : hs)
    for (auto [in, out] : {std::pair{h, h}, std::pair{h, 4 * h}, std::pair{4 * h, h}})
      for (int64_t m : {1, 8, 32, 128, 512, 2048}) {
        std::vector<float> x(size_t(m * in)), w(size_t(out * in)), y(size_t(m * out));
        for (float& v : x) v = dist(rng);
        for (float& v : w) v = dist(rng);
        std::vector<uint16_t> x16(x.size()), w16(w.size());
        tsp::kernels::to_bf16(x.data(), int64_t(x.size()), x16.data());
        tsp::kernels::to_bf16(w.data(), int64_t(w.size()), w16.data());
        auto product = [&] {
          tsp::kernels::onednn::matmul(false, true, m, out, in, 1.f, x16.data(), in, w16.data(), in, 0.f,
                                       y.data(), out);
        };
        omp_set_num_threads(1);
        const double one = tsp::bench::best_seconds(product, 5, 200, 0.2);
        omp_set_num_threads(team);
        const double all = tsp::bench::best_seconds(product, 5, 200, 0.2);
        char shape[64];
        std::snprintf(shape, sizeof shape, "h %lld: %lld->%lld", (long long)h, (long long)in, (long long)out);
        std::printf("%-22s %6lld %10.3f | %8.1fus %8.1fus | %6.2fx\n", shape, (long long)m,
                    2e-6 * double(m) * double(out) * double(in), one * 1e6, all * 1e6, all / one);
      }
  return 0;
}

#include "core/sgemm_rate.h"

#include <cblas.h>

#include <chrono>
#include <vector>

#include "core/check.h"

namespace tsp {

double sgemm_flops_per_s(int n, int reps) {
  TSP_CHECK(n > 0 && reps > 0, "sgemm_flops_per_s needs n > 0 and reps > 0 (got {} and {})", n, reps);
  const size_t nn = size_t(n) * size_t(n);
  std::vector<float> a(nn, 0.5f), b(nn, 0.25f), c(nn, 0.f);
  auto gemm = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a.data(), n, b.data(), n, 0.f,
                c.data(), n);
  };
  gemm();
  const auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r) gemm();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * double(n) * double(n) * double(n) * reps / sec;
}

}  // namespace tsp

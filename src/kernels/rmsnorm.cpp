#include "kernels/rmsnorm.h"

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "kernels/frozen_weights.h"

namespace tsp::kernels {

namespace {

// The gains as the model reads them: under the bf16 policy the held bf16 copy, widened (frozen_weights.h).
template <class T>
const T* gains(const T* w, int64_t n, std::vector<float>& scratch) {
  if constexpr (std::is_same_v<T, float>) return frozen_as_float(w, n, scratch);
  (void)n, (void)scratch;
  return w;
}

// Below this many elements the OpenMP fork/join costs more than the loop.
constexpr int64_t kParallelElements = int64_t(1) << 16;
// Columns per task of the dw reduction: a slab narrow enough that its partial sums stay in registers/L1.
constexpr int64_t kDwColumnBlock = 256;
}  // namespace

template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t h, double eps) {
  std::vector<float> held;
  w = gains(w, h, held);
  TSP_CHECK(n >= 0 && h > 0, "rmsnorm_forward: bad shape n={} h={}", n, h);
  TSP_CHECK(eps >= 0, "rmsnorm_forward: eps={} must be non-negative", eps);
#pragma omp parallel for schedule(static) if (n * h > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * h;
    T* oi = out + i * h;
    T ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < h; ++j) ss += xi[j] * xi[j];
    const T r = T(1) / std::sqrt(ss / T(h) + T(eps));
    rstd[i] = r;
    // HF normalises first and multiplies by the weight last; the same order keeps the rounding identical.
    for (int64_t j = 0; j < h; ++j) oi[j] = w[j] * (xi[j] * r);
  }
}

template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t n,
                      int64_t h) {
  std::vector<float> held;
  w = gains(w, h, held);
  TSP_CHECK(n >= 0 && h > 0, "rmsnorm_backward: bad shape n={} h={}", n, h);
  const bool parallel = n * h > kParallelElements;
  // With xhat = x r and g = dout w:  dx = r (g - xhat mean(g xhat)), since d r / d x = -r^3 x / h.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * h;
    const T* gi = dout + i * h;
    T* dxi = dx + i * h;
    const T r = rstd[i];
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < h; ++j) dot += gi[j] * w[j] * xi[j];
    const T c = dot * r * r * r / T(h);
    for (int64_t j = 0; j < h; ++j) dxi[j] += r * gi[j] * w[j] - c * xi[j];
  }
  if (!dw) return;
  // dw sums over tokens; splitting by column slabs instead of tokens needs no per-thread copies of dw and
  // sums every column in token order, so the result does not depend on the thread count.
  const int64_t blocks = (h + kDwColumnBlock - 1) / kDwColumnBlock;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t j0 = b * kDwColumnBlock, width = std::min(kDwColumnBlock, h - j0);
    T acc[kDwColumnBlock] = {};
    for (int64_t i = 0; i < n; ++i) {
      const T* xi = x + i * h + j0;
      const T* gi = dout + i * h + j0;
      const T r = rstd[i];
      for (int64_t j = 0; j < width; ++j) acc[j] += gi[j] * xi[j] * r;
    }
    for (int64_t j = 0; j < width; ++j) dw[j0 + j] += acc[j];
  }
}

namespace {
template <class T>
T row_rstd(const T* x, int64_t d, double eps) {
  T ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < d; ++j) ss += x[j] * x[j];
  return T(1) / std::sqrt(ss / T(d) + T(eps));
}
}  // namespace

template <class T>
void rmsnorm_rows_inplace(T* x, const T* w, int64_t rows, int64_t d, double eps) {
  TSP_CHECK(rows >= 0 && d > 0 && eps >= 0, "rmsnorm_rows_inplace: bad shape rows={} d={} eps={}", rows, d,
            eps);
  std::vector<float> held;
  w = gains(w, d, held);
#pragma omp parallel for schedule(static) if (rows * d > kParallelElements)
  for (int64_t i = 0; i < rows; ++i) {
    T* xi = x + i * d;
    const T r = row_rstd(xi, d, eps);
    for (int64_t j = 0; j < d; ++j) xi[j] = w[j] * (xi[j] * r);
  }
}

template <class T>
void rmsnorm_rows_backward_inplace(T* dx, T* dw, const T* x, const T* w, int64_t rows, int64_t d,
                                   double eps) {
  TSP_CHECK(rows >= 0 && d > 0 && eps >= 0, "rmsnorm_rows_backward_inplace: bad shape rows={} d={} eps={}",
            rows, d, eps);
  std::vector<float> held;
  w = gains(w, d, held);
  const bool parallel = rows * d > kParallelElements;
  // dw first, while dx still holds d(loss)/d(out): column slabs as in rmsnorm_backward, rows in order.
  if (dw) {
    const int64_t blocks = (d + kDwColumnBlock - 1) / kDwColumnBlock;
#pragma omp parallel for schedule(static) if (parallel && blocks > 1)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t j0 = b * kDwColumnBlock, width = std::min(kDwColumnBlock, d - j0);
      T acc[kDwColumnBlock] = {};
      for (int64_t i = 0; i < rows; ++i) {
        const T r = row_rstd(x + i * d, d, eps);
        const T* xi = x + i * d + j0;
        const T* gi = dx + i * d + j0;
        for (int64_t j = 0; j < width; ++j) acc[j] += gi[j] * xi[j] * r;
      }
      for (int64_t j = 0; j < width; ++j) dw[j0 + j] += acc[j];
    }
  }
  // dx = r (g w - xhat mean(g w xhat)), row by row in place.
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t i = 0; i < rows; ++i) {
    const T* xi = x + i * d;
    T* gi = dx + i * d;
    const T r = row_rstd(xi, d, eps);
    T dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < d; ++j) dot += gi[j] * w[j] * xi[j];
    const T c = dot * r * r * r / T(d);
    for (int64_t j = 0; j < d; ++j) gi[j] = r * gi[j] * w[j] - c * xi[j];
  }
}

#define TSP_INSTANTIATE_RMSNORM(T)                                                                     \
  template void rmsnorm_forward<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);              \
  template void rmsnorm_backward<T>(T*, T*, const T*, const T*, const T*, const T*, int64_t, int64_t); \
  template void rmsnorm_rows_inplace<T>(T*, const T*, int64_t, int64_t, double);                       \
  template void rmsnorm_rows_backward_inplace<T>(T*, T*, const T*, const T*, int64_t, int64_t, double);

TSP_INSTANTIATE_RMSNORM(float)
TSP_INSTANTIATE_RMSNORM(double)

}  // namespace tsp::kernels

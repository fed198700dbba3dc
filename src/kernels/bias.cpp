#include "kernels/bias.h"

#include <algorithm>

#include "core/check.h"

namespace tsp::kernels {

namespace {
constexpr int64_t kParallelElements = int64_t(1) << 16;
constexpr int64_t kColumnBlock = 256;  // columns per task of the backward's sum over rows
}  // namespace

template <class T>
void bias_forward(T* y, const T* b, int64_t n, int64_t out) {
  TSP_CHECK(n >= 0 && out > 0, "bias_forward: bad shape n={} out={}", n, out);
#pragma omp parallel for schedule(static) if (n * out > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    T* yi = y + i * out;
#pragma omp simd
    for (int64_t j = 0; j < out; ++j) yi[j] += b[j];
  }
}

template <class T>
void bias_backward(T* db, const T* dy, int64_t n, int64_t out) {
  TSP_CHECK(n >= 0 && out > 0, "bias_backward: bad shape n={} out={}", n, out);
  const int64_t blocks = (out + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for schedule(static) if (n * out > kParallelElements && blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t j0 = blk * kColumnBlock, width = std::min(kColumnBlock, out - j0);
    T acc[kColumnBlock] = {};
    for (int64_t i = 0; i < n; ++i) {
      const T* di = dy + i * out + j0;
      for (int64_t j = 0; j < width; ++j) acc[j] += di[j];
    }
    for (int64_t j = 0; j < width; ++j) db[j0 + j] += acc[j];
  }
}

template void bias_forward<float>(float*, const float*, int64_t, int64_t);
template void bias_forward<double>(double*, const double*, int64_t, int64_t);
template void bias_backward<float>(float*, const float*, int64_t, int64_t);
template void bias_backward<double>(double*, const double*, int64_t, int64_t);

}  // namespace tsp::kernels

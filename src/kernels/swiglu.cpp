#include "kernels/swiglu.h"

#include <cmath>

#include "core/check.h"

namespace tsp::kernels {

namespace {
constexpr int64_t kParallelElements = int64_t(1) << 16;
}  // namespace

// exp(-g) overflows to +inf for very negative g, which gives sigmoid = 0 and silu = -0: the correct limits,
// so no branch is needed.
template <class T>
void swiglu_forward(T* h, const T* g, const T* u, int64_t count) {
  TSP_CHECK(count >= 0, "swiglu_forward: negative count {}", count);
#pragma omp parallel for simd schedule(static) if (count > kParallelElements)
  for (int64_t i = 0; i < count; ++i) {
    const T s = T(1) / (T(1) + std::exp(-g[i]));
    h[i] = g[i] * s * u[i];
  }
}

template <class T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t count) {
  TSP_CHECK(count >= 0, "swiglu_backward: negative count {}", count);
  // silu'(g) = s + g s (1 - s) with s = sigmoid(g).
#pragma omp parallel for simd schedule(static) if (count > kParallelElements)
  for (int64_t i = 0; i < count; ++i) {
    const T s = T(1) / (T(1) + std::exp(-g[i]));
    const T silu = g[i] * s;
    dg[i] += dh[i] * u[i] * (s + silu * (T(1) - s));
    du[i] += dh[i] * silu;
  }
}

template void swiglu_forward<float>(float*, const float*, const float*, int64_t);
template void swiglu_forward<double>(double*, const double*, const double*, int64_t);
template void swiglu_backward<float>(float*, float*, const float*, const float*, const float*, int64_t);
template void swiglu_backward<double>(double*, double*, const double*, const double*, const double*, int64_t);

}  // namespace tsp::kernels

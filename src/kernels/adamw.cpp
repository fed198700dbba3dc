#include "kernels/adamw.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "kernels/bf16.h"

namespace tsp::kernels {

namespace {
constexpr int64_t kParallelElements = int64_t(1) << 16;
// sum_squares adds fixed-size blocks in a fixed order, so the global norm (and hence clipping) is bitwise the
// same whatever the thread count.
constexpr int64_t kSumBlock = int64_t(1) << 14;
}  // namespace

namespace {

// A moment as stored: in T, or as bf16 bits (--optimizer-dtype bf16), rounded to nearest even.
template <class T>
double load_moment(T x) {
  return double(x);
}
inline double load_moment(uint16_t b) {
  return double(bf16_to_float(b));
}
template <class M>
M store_moment(double x) {
  if constexpr (std::is_same_v<M, uint16_t>)
    return float_to_bf16(float(x));
  else
    return M(x);
}

template <class T, class M>
void adamw(T* p, const T* g, M* m, M* v, int64_t n, int64_t t, double lr, double weight_decay,
           const AdamWHyper& hp) {
  TSP_CHECK(t >= 1, "adamw_update: step t={} must be >= 1 (bias correction divides by 1 - beta^t)", t);
  TSP_CHECK(n >= 0, "adamw_update: negative size {}", n);
  TSP_CHECK(hp.beta1 >= 0 && hp.beta1 < 1 && hp.beta2 >= 0 && hp.beta2 < 1,
            "adamw_update: betas ({}, {}) must lie in [0, 1)", hp.beta1, hp.beta2);
  const double b1 = hp.beta1, b2 = hp.beta2, eps = hp.eps;
  const double bias1 = 1.0 - std::pow(b1, double(t)), bias2 = 1.0 - std::pow(b2, double(t));
  // The update is formed in double and rounded once, so float and double runs differ only by storage
  // rounding; bf16 moments round only what is stored (this step uses the unrounded moments).
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const double gi = double(g[i]);
    const double mi = b1 * load_moment(m[i]) + (1.0 - b1) * gi;
    const double vi = b2 * load_moment(v[i]) + (1.0 - b2) * gi * gi;
    m[i] = store_moment<M>(mi);
    v[i] = store_moment<M>(vi);
    const double pi = double(p[i]);
    // Decoupled decay: wd * p is added to the step, never to the gradient, so it bypasses the moments.
    p[i] = T(pi - lr * ((mi / bias1) / (std::sqrt(vi / bias2) + eps) + weight_decay * pi));
  }
}

}  // namespace

template <class T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, int64_t t, double lr, double weight_decay,
                  const AdamWHyper& hp) {
  adamw(p, g, m, v, n, t, lr, weight_decay, hp);
}

void adamw_update(float* p, const float* g, uint16_t* m, uint16_t* v, int64_t n, int64_t t, double lr,
                  double weight_decay, const AdamWHyper& hp) {
  adamw(p, g, m, v, n, t, lr, weight_decay, hp);
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  TSP_CHECK(n >= 0, "sum_squares: negative size {}", n);
  const int64_t blocks = (n + kSumBlock - 1) / kSumBlock;
  std::vector<double> partial(blocks);
#pragma omp parallel for schedule(static) if (n > kParallelElements)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t lo = b * kSumBlock, hi = std::min(n, lo + kSumBlock);
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; ++i) s += double(x[i]) * double(x[i]);
    partial[b] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  return total;
}

template <class T>
void scale_inplace(T* x, int64_t n, double s) {
  TSP_CHECK(n >= 0, "scale_inplace: negative size {}", n);
  const T st = T(s);
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i) x[i] *= st;
}

double clip_coefficient(double global_norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  return std::min(1.0, max_norm / (global_norm + 1e-6));
}

double cosine_lr(int64_t step, int64_t warmup, int64_t total, double lr_max, double lr_min) {
  TSP_CHECK(warmup >= 0 && total >= 0, "cosine_lr: warmup={} and total={} must be non-negative", warmup,
            total);
  step = std::max<int64_t>(step, 0);
  if (warmup > 0 && step <= warmup) return lr_max * double(step) / double(warmup);
  if (step >= total) return lr_min;
  const double progress = double(step - warmup) / double(total - warmup);
  return lr_min + 0.5 * (lr_max - lr_min) * (1.0 + std::cos(std::numbers::pi * progress));
}

template void adamw_update<float>(float*, const float*, float*, float*, int64_t, int64_t, double, double,
                                  const AdamWHyper&);
template void adamw_update<double>(double*, const double*, double*, double*, int64_t, int64_t, double, double,
                                   const AdamWHyper&);
template double sum_squares<float>(const float*, int64_t);
template double sum_squares<double>(const double*, int64_t);
template void scale_inplace<float>(float*, int64_t, double);
template void scale_inplace<double>(double*, int64_t, double);

}  // namespace tsp::kernels

#include "kernels/rope.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace tsp::kernels {

namespace {

constexpr int64_t kParallelElements = int64_t(1) << 16;

// Rotates every pair (i, i + d/2) of every head by angle sign * pos * inv_freq[i]; sign = -1 is the inverse
// (the rotation is orthogonal, so its adjoint is its inverse).
template <class T>
void rotate_half(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, double theta, double sign,
                 const char* who) {
  TSP_CHECK(n >= 0 && heads > 0 && d > 0 && d % 2 == 0,
            "{}: bad shape n={} heads={} head_dim={} (head_dim must be even)", who, n, heads, d);
  TSP_CHECK(theta > 0, "{}: theta={} must be positive", who, theta);
  const int64_t half = d / 2;
  std::vector<double> inv_freq(half);
  for (int64_t i = 0; i < half; ++i) inv_freq[i] = std::pow(theta, -2.0 * double(i) / double(d));

#pragma omp parallel if (n * heads * d > kParallelElements)
  {
    // cos and sin depend on the token only; every head reuses them.
    std::vector<double> cos_t(half), sin_t(half);
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const double p = double(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p * inv_freq[i];
        cos_t[i] = std::cos(angle);
        sin_t[i] = sign * std::sin(angle);
      }
      for (int64_t hd = 0; hd < heads; ++hd) {
        T* lo = x + (t * heads + hd) * d;
        T* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const double a = double(lo[i]), b = double(hi[i]);
          lo[i] = T(a * cos_t[i] - b * sin_t[i]);
          hi[i] = T(b * cos_t[i] + a * sin_t[i]);
        }
      }
    }
  }
}

}  // namespace

template <class T>
void rope_forward(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, double theta) {
  rotate_half(x, pos, n, heads, d, theta, 1.0, "rope_forward");
}

template <class T>
void rope_backward(T* dx, const int64_t* pos, int64_t n, int64_t heads, int64_t d, double theta) {
  rotate_half(dx, pos, n, heads, d, theta, -1.0, "rope_backward");
}

template void rope_forward<float>(float*, const int64_t*, int64_t, int64_t, int64_t, double);
template void rope_forward<double>(double*, const int64_t*, int64_t, int64_t, int64_t, double);
template void rope_backward<float>(float*, const int64_t*, int64_t, int64_t, int64_t, double);
template void rope_backward<double>(double*, const int64_t*, int64_t, int64_t, int64_t, double);

}  // namespace tsp::kernels

#include "kernels/rope.h"

#include <cmath>

#include "core/check.h"

namespace tsp::kernels {

namespace {

constexpr int64_t kParallelElements = int64_t(1) << 16;

// Rotates every pair (i, i + d/2) of every head by angle sign * pos * inv_freq[i] and scales it by the
// attention factor; sign = -1 is the adjoint.
template <class T>
void rotate_half(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, const RopeTable& rope,
                 double sign, const char* who) {
  TSP_CHECK(n >= 0 && heads > 0 && d > 0 && d % 2 == 0,
            "{}: bad shape n={} heads={} head_dim={} (head_dim must be even)", who, n, heads, d);
  TSP_CHECK(rope.head_dim() == d, "{}: the RoPE table is for head_dim {}, the tensor has head_dim {}", who,
            rope.head_dim(), d);
  const int64_t half = d / 2;
  const double* inv_freq = rope.inv_freq.data();
  const double scale = rope.attention_factor;

#pragma omp parallel if (n * heads * d > kParallelElements)
  {
    // cos and sin depend on the token only; every head reuses them.
    std::vector<double> cos_t(static_cast<size_t>(half)), sin_t(static_cast<size_t>(half));
#pragma omp for schedule(static)
    for (int64_t t = 0; t < n; ++t) {
      const double p = double(pos[t]);
      for (int64_t i = 0; i < half; ++i) {
        const double angle = p * inv_freq[i];
        cos_t[size_t(i)] = scale * std::cos(angle);
        sin_t[size_t(i)] = sign * scale * std::sin(angle);
      }
      for (int64_t hd = 0; hd < heads; ++hd) {
        T* lo = x + (t * heads + hd) * d;
        T* hi = lo + half;
        for (int64_t i = 0; i < half; ++i) {
          const double a = double(lo[i]), b = double(hi[i]);
          lo[i] = T(a * cos_t[size_t(i)] - b * sin_t[size_t(i)]);
          hi[i] = T(b * cos_t[size_t(i)] + a * sin_t[size_t(i)]);
        }
      }
    }
  }
}

}  // namespace

RopeTable RopeTable::standard(int64_t head_dim, double theta) {
  TSP_CHECK(head_dim > 0 && head_dim % 2 == 0, "RopeTable: head_dim {} must be positive and even", head_dim);
  TSP_CHECK(theta > 0, "RopeTable: theta={} must be positive", theta);
  RopeTable t;
  t.inv_freq.resize(size_t(head_dim / 2));
  for (int64_t i = 0; i < head_dim / 2; ++i)
    t.inv_freq[size_t(i)] = std::pow(theta, -2.0 * double(i) / double(head_dim));
  return t;
}

template <class T>
void rope_forward(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, const RopeTable& rope) {
  rotate_half(x, pos, n, heads, d, rope, 1.0, "rope_forward");
}

template <class T>
void rope_backward(T* dx, const int64_t* pos, int64_t n, int64_t heads, int64_t d, const RopeTable& rope) {
  rotate_half(dx, pos, n, heads, d, rope, -1.0, "rope_backward");
}

template void rope_forward<float>(float*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_forward<double>(double*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_backward<float>(float*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_backward<double>(double*, const int64_t*, int64_t, int64_t, int64_t, const RopeTable&);

}  // namespace tsp::kernels

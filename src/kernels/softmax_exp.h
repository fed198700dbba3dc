// exp for the numerators of a softmax, shared by the attention kernels (prefill and decode) so that both
// round the same way.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace tsp::kernels {

// exp(x) for the softmax numerators, where x <= 0 up to rounding. glibc only offers a vector expf under
// -ffast-math, and a scalar expf per score would cost more than the tile products, so float uses the Cephes
// expf scheme written branch-free: x = n ln2 + r, |r| <= ln2 / 2, a degree-6 polynomial for e^r and 2^n built
// from its exponent bits. About 1 ulp; anything below e^-87 (including -inf, i.e. masked) becomes 0.
inline float exp_score(float x) {
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRoundToInt = 12582912.0f;  // 1.5 * 2^23: adding it rounds to the nearest integer
  const float xc = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = (xc * kLog2e + kRoundToInt) - kRoundToInt;
  float r = xc - n * kLn2Hi;
  r = r - n * kLn2Lo;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.0f ? 0.0f : er * two_n;
}

// Double is the reference precision (tests, gradient checks): the library exp keeps it exact to the last
// bits.
inline double exp_score(double x) {
  return std::exp(x);
}

// max that keeps a NaN (std::max drops a NaN second argument), so that a NaN score reaches the output.
template <class T>
inline T nan_max(T a, T b) {
  return a != a || b != b ? (a != a ? a : b) : (a < b ? b : a);
}

}  // namespace tsp::kernels

#include "kernels/bf16.h"

#include <bit>

namespace tsp::kernels {

// The same rounding as float_to_bf16, written without the early return so that the loop vectorises (with the
// branch, GCC 12 kept it scalar: 0.36 ns per element here, as long as a bf16 tile product per tile of
// attention).
void to_bf16(const float* x, int64_t n, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = std::bit_cast<uint32_t>(x[i]);
    const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (b >> 16) | 0x40u;
    out[i] = uint16_t((b & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
  }
}

void from_bf16(const uint16_t* x, int64_t n, float* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) out[i] = std::bit_cast<float>(uint32_t(x[i]) << 16);
}

void round_to_bf16(float* x, int64_t n, uint16_t* out) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t b = std::bit_cast<uint32_t>(x[i]);
    const uint32_t rounded = (b + 0x7FFFu + ((b >> 16) & 1u)) >> 16;
    const uint32_t quiet_nan = (b >> 16) | 0x40u;
    const uint16_t r = uint16_t((b & 0x7FFFFFFFu) > 0x7F800000u ? quiet_nan : rounded);
    out[i] = r;
    x[i] = std::bit_cast<float>(uint32_t(r) << 16);
  }
}

}  // namespace tsp::kernels

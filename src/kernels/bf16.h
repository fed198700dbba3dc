// bfloat16: the top 16 bits of an IEEE float (8 exponent bits, 7 fraction bits; unit roundoff 2^-8), held as
// its bit pattern in a uint16_t (the layout oneDNN's bf16 memory and safetensors' BF16 use). Narrowing rounds
// to nearest, ties to even, as torch's .to(torch.bfloat16) and oneDNN's reorder do; NaN stays a (quiet) NaN.
// Unlike oneDNN's reorder, subnormals are kept, not flushed.
#pragma once

#include <bit>
#include <cstdint>

namespace tsp {

inline float bf16_to_float(uint16_t b) {
  return std::bit_cast<float>(uint32_t(b) << 16);
}

inline uint16_t float_to_bf16(float x) {
  uint32_t b = std::bit_cast<uint32_t>(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((b >> 16) | 0x40u);  // quiet NaN
  b += 0x7FFFu + ((b >> 16) & 1u);                                          // round to nearest even
  return uint16_t(b >> 16);
}

namespace kernels {

// out[i] = bf16(x[i]) and out[i] = float(x[i]) for n elements (loops the compiler vectorises; at memory
// speed).
void to_bf16(const float* x, int64_t n, uint16_t* out);
void from_bf16(const uint16_t* x, int64_t n, float* out);
// Both in one pass: out[i] = bf16(x[i]) and x[i] rounded in place to that value.
void round_to_bf16(float* x, int64_t n, uint16_t* out);

}  // namespace kernels
}  // namespace tsp

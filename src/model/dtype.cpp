#include "model/dtype.h"

#include <bit>
#include <cstring>
#include <type_traits>

#include "kernels/bf16.h"

namespace tsp {

namespace {

// The formats are little-endian and we copy bytes straight into host numbers.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = float(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf, NaN keeps payload
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

// Rounds a double to the nearest value (ties to even) of a binary format with E exponent bits and M fraction
// bits, returning its bit pattern. Going through double is exact for float inputs, so one routine serves both
// source types without double rounding.
template <int E, int M>
uint32_t round_to_narrow(double x) {
  constexpr int kBias = (1 << (E - 1)) - 1;
  constexpr int kMinExp = 1 - kBias;
  constexpr uint32_t kInf = ((1u << E) - 1) << M;
  const uint64_t b = std::bit_cast<uint64_t>(x);
  const uint32_t sign = uint32_t(b >> 63) << (E + M);
  const int exp = int((b >> 52) & 0x7FF);
  const uint64_t frac = b & ((uint64_t(1) << 52) - 1);
  if (exp == 0x7FF) return sign | kInf | (frac ? (1u << (M - 1)) : 0u);  // inf, or a quiet NaN
  if (exp == 0) return sign;  // double zeros and subnormals are far below the narrow format's range
  const int e = exp - 1023;
  if (e > kBias) return sign | kInf;
  const uint64_t full = frac | (uint64_t(1) << 52);
  // Normal results keep M fraction bits; each step below the minimum exponent loses one more.
  const int shift = 52 - M + (e < kMinExp ? kMinExp - e : 0);
  if (shift > 53) return sign;  // less than half the smallest subnormal
  uint64_t q = full >> shift;
  const uint64_t rem = full & ((uint64_t(1) << shift) - 1);
  const uint64_t half = uint64_t(1) << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  // q carries the implicit bit for normals; adding it to (biased exponent - 1) lets a rounding carry step the
  // exponent (up to inf). For subnormals, q reaching 1 << M is exactly the smallest normal.
  const uint32_t mag = e < kMinExp ? uint32_t(q) : (uint32_t(e + kBias - 1) << M) + uint32_t(q);
  return sign | mag;
}

template <class T>
uint16_t to_bf16(T x) {
  if constexpr (std::is_same_v<T, float>)
    return float_to_bf16(x);
  else
    return uint16_t(round_to_narrow<8, 7>(double(x)));
}

template <class T>
uint16_t to_f16(T x) {
  return uint16_t(round_to_narrow<5, 10>(double(x)));
}

template <class U>
U load(const unsigned char* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}

template <class U>
void store(unsigned char* p, U v) {
  std::memcpy(p, &v, sizeof(U));
}

}  // namespace

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

std::optional<DType> parse_dtype(const std::string& s) {
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
    if (s == dtype_name(t)) return t;
  }
  return std::nullopt;
}

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::F16:
    case DType::BF16:
      return 2;
  }
  return 0;
}

std::string torch_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "float32";
    case DType::F64:
      return "float64";
    case DType::F16:
      return "float16";
    case DType::BF16:
      return "bfloat16";
  }
  return "?";
}

std::optional<DType> parse_torch_dtype(const std::string& s) {
  // torch also spells float32 "float" and float16 "half" in older configs.
  if (s == "float") return DType::F32;
  if (s == "half") return DType::F16;
  if (s == "double") return DType::F64;
  for (DType t : {DType::F32, DType::F64, DType::F16, DType::BF16}) {
    if (s == torch_dtype_name(t)) return t;
  }
  return std::nullopt;
}

template <class T>
void decode_elements(DType dt, const unsigned char* src, int64_t n, T* out) {
  switch (dt) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) out[i] = T(load<float>(src + 4 * i));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) out[i] = T(load<double>(src + 8 * i));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = T(f16_to_float(load<uint16_t>(src + 2 * i)));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = T(bf16_to_float(load<uint16_t>(src + 2 * i)));
      return;
  }
}

template <class T>
void encode_elements(DType dt, const T* src, int64_t n, unsigned char* out) {
  switch (dt) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) store<float>(out + 4 * i, float(src[i]));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) store<double>(out + 8 * i, double(src[i]));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, to_f16(src[i]));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, to_bf16(src[i]));
      return;
  }
}

template void decode_elements<float>(DType, const unsigned char*, int64_t, float*);
template void decode_elements<double>(DType, const unsigned char*, int64_t, double*);
template void encode_elements<float>(DType, const float*, int64_t, unsigned char*);
template void encode_elements<double>(DType, const double*, int64_t, unsigned char*);

}  // namespace tsp

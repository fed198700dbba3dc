// The floating-point storage formats of safetensors files and their conversions to and from the run's
// float/double: decode widens exactly; encode rounds to nearest, ties to even (as torch's .to() does).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace tsp {

enum class DType { F32, F64, F16, BF16 };

// safetensors' names ("F32", "BF16", ...).
std::string dtype_name(DType t);
std::optional<DType> parse_dtype(const std::string& name);
int64_t dtype_size(DType t);

// config.json's "torch_dtype" names ("float32", "bfloat16", ...); nullopt for a name that has no DType here.
std::string torch_dtype_name(DType t);
std::optional<DType> parse_torch_dtype(const std::string& name);

// n elements of format dt at src (any alignment) -> out.
template <class T>
void decode_elements(DType dt, const unsigned char* src, int64_t n, T* out);
// n elements of src -> format dt at out (any alignment).
template <class T>
void encode_elements(DType dt, const T* src, int64_t n, unsigned char* out);

}  // namespace tsp

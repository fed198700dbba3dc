// A weight operand of a linear product, held either in the model's precision (const T*) or, for float
// models, as bf16 bit patterns (const uint16_t*): a TSP weight shard that travelled in bf16
// (--weight-comm-dtype bf16) is consumed as it arrived. Under --matmul-precision bf16 the product would round
// an fp32 weight to exactly those bits, so a bf16 operand changes nothing but the bytes moved; a product
// that is not in bf16 cannot use one (kernels::linear_forward checks).
#pragma once

#include <cstdint>
#include <type_traits>

namespace tsp::kernels {

template <class T>
struct WeightRef {
  const T* f = nullptr;         // the weight in T
  const uint16_t* b = nullptr;  // or its bf16 bits (float only)

  WeightRef() = default;
  WeightRef(std::nullptr_t) {}
  WeightRef(const T* w) : f(w) {}  // NOLINT: implicit, so that every caller holding a T* is unchanged
  WeightRef(const uint16_t* w) requires std::is_same_v<T, float> : b(w) {}

  explicit operator bool() const { return f != nullptr || b != nullptr; }
  bool is_bf16() const { return b != nullptr; }
  // The operand `o` elements further on (a tensor inside a packed shard).
  WeightRef operator+(int64_t o) const {
    WeightRef r;
    if (f) r.f = f + o;
    if (b) r.b = b + o;
    return r;
  }
};

}  // namespace tsp::kernels

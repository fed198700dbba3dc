// Storage that one transfer uses in T and another in bf16 at a different moment — under the bf16 policy the
// forward's activations travel in bf16 while the backward's gradient sums travel in fp32 (core/precision.h)
// — sized for the larger of the two views, so that the bf16 policy never holds more communication memory
// than T would for the same exchanges. The views alias: use one at a time.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/memory.h"

namespace tsp {

template <class T>
class WireBuffer {
 public:
  // n_t, n_bf16: the elements each view needs (0: that view is not used).
  void allocate(int64_t n_t, int64_t n_bf16, Mem cat) {
    const int64_t per = int64_t(sizeof(T) / sizeof(uint16_t));
    raw_ = Buffer<T>(std::max(n_t, (n_bf16 + per - 1) / per), cat);
  }
  T* t() { return raw_.data(); }
  uint16_t* bf16() { return reinterpret_cast<uint16_t*>(raw_.data()); }
  int64_t bytes() const { return raw_.size() * int64_t(sizeof(T)); }

 private:
  Buffer<T> raw_;
};

}  // namespace tsp

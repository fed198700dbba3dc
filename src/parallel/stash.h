// Activations kept from the forward for the backward: `slots` tensors of `numel` elements, held in T, or
// under the bf16 policy (core/precision.h) as bf16 with one working buffer in T (workspace) that the forward
// computes a slot into and the backward reads a slot back from. The pattern is the same either way:
//
//   T* x = stash.work(s);   ... compute x ...;   stash.save(s);   ... the forward goes on reading x ...
//   const T* x = stash.load(s);                  (the backward)
//
// save() also rounds the working buffer in place, so that the rest of the forward reads exactly the values
// the backward will load: the forward and the backward see one bf16 activation, as a bf16 model's do. In T,
// work(s) is slot s itself and save() and load() copy nothing.
#pragma once

#include <cstdint>

#include "core/check.h"
#include "core/memory.h"
#include "core/precision.h"
#include "kernels/bf16.h"

namespace tsp {

template <class T>
class Stash {
 public:
  // bf16: hold the slots in bf16 (float only); the default follows the policy.
  void prepare(int64_t slots, int64_t numel) { prepare(slots, numel, bf16_storage<T>()); }
  void prepare(int64_t slots, int64_t numel, bool bf16) {
    TSP_CHECK(!bf16 || (std::is_same_v<T, float>), "a bf16 stash holds float activations only");
    slots_ = slots;
    numel_ = numel;
    bf16_ = bf16;
    t_ = Buffer<T>(bf16 ? 0 : slots * numel, Mem::activations);
    b_ = Buffer<uint16_t>(bf16 ? slots * numel : 0, Mem::activations);
    work_ = Buffer<T>(bf16 && slots > 0 ? numel : 0, Mem::workspace);
  }
  int64_t numel() const { return numel_; }
  bool bf16() const { return bf16_; }

  // Where the forward computes slot s.
  T* work(int64_t s) {
    check(s);
    return bf16_ ? work_.data() : t_.data() + s * numel_;
  }
  // Keeps what work(s) holds as slot s (bf16: rounded, in the slot and in place).
  void save(int64_t s) {
    check(s);
    if constexpr (std::is_same_v<T, float>)
      if (bf16_) {
        kernels::round_to_bf16(work_.data(), numel_, b_.data() + s * numel_);
      }
  }
  // Slot s as the backward reads it (bf16: widened into the working buffer, valid until the next work() or
  // load() of this stash).
  const T* load(int64_t s) {
    check(s);
    if constexpr (std::is_same_v<T, float>)
      if (bf16_) {
        kernels::from_bf16(b_.data() + s * numel_, numel_, work_.data());
        return work_.data();
      }
    return t_.data() + s * numel_;
  }

 private:
  void check(int64_t s) const {
    TSP_CHECK(s >= 0 && s < slots_, "activation stash: slot {} outside [0, {})", s, slots_);
  }
  int64_t slots_ = 0, numel_ = 0;
  bool bf16_ = false;
  Buffer<T> t_;
  Buffer<uint16_t> b_;
  Buffer<T> work_;
};

}  // namespace tsp

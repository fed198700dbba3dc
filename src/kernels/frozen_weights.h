// bf16 copies of weights at rest. Under --matmul-precision bf16 every linear product rounds its fp32 operands
// to bf16 on the call; for a weight that cannot change — inference, for the length of one generation — that
// rounding is the same every time, and in decode it costs about as much as the product (docs/performance.md,
// "Blocked weights"). A FrozenBf16Weights rounds the ranges it is given once; while it lives,
// kernels::linear_forward uses that copy for a weight operand lying inside one of them (the result is the
// same bits: the copy is exactly what the call would have rounded). Communication buffers are never
// registered: a weight shard received from another rank is rounded per call, unless it travelled in bf16
// (--weight-comm-dtype bf16), in which case the product uses it as it arrived (kernels/weight_ref.h).
//
// The same registry holds the weights of a run under the bf16 policy (--dtype bf16, core/precision.h): there
// the copy is the weights the model computes with, and ModelParams::sync_bf16 refreshes it from the fp32
// master before every forward. Every read of a weight by a float kernel goes through it — the products, the
// embedding lookup (embedding_forward), the biases (parallel/blocks.cpp) and the norm gains (rmsnorm.h) —
// so that every layout computes with the same bf16 weights without naming them.
//
// The registry is process-wide. Register and unregister only while no product runs (the holder is created
// and destroyed by the thread that runs the model); the weights must not change while they are registered,
// unless refresh() follows before the next read.
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"

namespace tsp::kernels {

class FrozenBf16Weights {
 public:
  // every_read: the copy stands for the weights in every read (the bf16 policy's weights, ModelParams), not
  // only in the products (weights at rest under --matmul-precision bf16, whose other reads stay fp32).
  explicit FrozenBf16Weights(bool every_read = false) : every_read_(every_read) {}
  ~FrozenBf16Weights();
  FrozenBf16Weights(const FrozenBf16Weights&) = delete;
  FrozenBf16Weights& operator=(const FrozenBf16Weights&) = delete;

  // Rounds w[0, n) to bf16 now (a copy under the allocator's `parameters` category: half the fp32 bytes) and
  // registers it. Ranges must not overlap one already registered.
  void add(const float* w, int64_t n);
  // Registers a zeroed copy for w[0, n) without reading w (its address stands for weights that exist only
  // as this copy: the bf16 policy's serving weights); returns the copy, which the caller fills. refresh()
  // must not be called on a holder with such copies.
  uint16_t* add_unread(const float* w, int64_t n);
  // Rounds every range again from its fp32 source (the weights changed: an optimizer step, a load). Call
  // only while no product runs, like add().
  void refresh();
  // Bytes of the bf16 copies held.
  int64_t bytes() const;

 private:
  bool every_read_ = false;
  std::vector<const float*> ranges_;
  std::vector<Buffer<uint16_t>> copies_;
};

// The bf16 copy of w[0, n) when a live FrozenBf16Weights holds a range containing it, else nullptr.
const uint16_t* frozen_bf16(const float* w, int64_t n);
// The bf16 copy of w[0, n) when a live holder made with every_read holds it (the bf16 policy's weights: the
// reads outside the products, such as the embedding lookup), else nullptr.
const uint16_t* held_bf16(const float* w, int64_t n);
// The weights w[0, n) as the model reads them outside the products: w itself unless held_bf16 has a copy,
// which is then widened into `scratch` (resized; the caller keeps it while it reads the result). For the
// small vectors: norm gains, biases.
const float* frozen_as_float(const float* w, int64_t n, std::vector<float>& scratch);
// How many lookups found a copy since the process started (tests: the copies are used, not only made).
int64_t frozen_bf16_hits();

}  // namespace tsp::kernels

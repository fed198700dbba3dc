// Weights at rest in oneDNN's blocked layout, for serving. A bf16 product packs a row-major weight into the
// layout its kernel reads on every call; for a decode step's few rows that packing is most of the product
// at h >= 512, and a weight kept blocked runs 1.2-2.2x faster there (bench/bench_blocked_weights,
// docs/performance.md "Blocked weights"); at h 128 it goes either way, and in training (4096 rows, weights
// that change every step) it gains 2-5 %, less than the reorder costs. So tsp keeps blocked copies only of
// weights at rest, only of matrices whose both sides are at least kMinBlockedDim, and only when asked
// (--blocked-weights: the copies cost the weights' bf16 bytes again, counted under `parameters`).
//
// A BlockedBf16Weights makes the copies of the bf16 weights it is given and registers them, process-wide
// like kernels/frozen_weights.h; while it lives kernels::linear_forward multiplies by the blocked copy of a
// bf16 weight it finds (the same operands; oneDNN's blocked kernel may sum in another order, so the result
// agrees with the plain product to fp32 rounding, not bit for bit). Register and unregister only while no
// product runs.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/onednn_matmul.h"

namespace tsp::kernels {

inline constexpr int64_t kMinBlockedDim = 512;

class BlockedBf16Weights {
 public:
  BlockedBf16Weights() = default;
  ~BlockedBf16Weights();
  BlockedBf16Weights(const BlockedBf16Weights&) = delete;
  BlockedBf16Weights& operator=(const BlockedBf16Weights&) = delete;

  // Keeps a blocked copy of w [out, in] (bf16, row-major) for Y = X·Wᵀ when out and in are both at least
  // kMinBlockedDim and oneDNN reads another layout than the plain one; returns whether it did.
  bool add(const uint16_t* w, int64_t out, int64_t in);
  int64_t bytes() const;
  int64_t count() const { return int64_t(copies_.size()); }

 private:
  std::vector<onednn::BlockedWeightPtr> copies_;
};

// The blocked copy of the bf16 weight w [out, in] a live holder keeps, else nullptr.
const onednn::BlockedWeight* blocked_bf16(const uint16_t* w, int64_t out, int64_t in);

}  // namespace tsp::kernels

// Rotary position embedding, HF "rotate-half" convention: for pair (i, i + d/2) at position p, angle
// a = p * inv_freq[i], and with HF's attention scaling s (1 except for yarn):
//   x'[i] = s (x[i] cos a - x[i+d/2] sin a),   x'[i+d/2] = s (x[i+d/2] cos a + x[i] sin a).
// Every token carries its own GLOBAL position (parallel layouts hold non-contiguous tokens).
// Angles are computed in double whatever T is, so float and double differ only by the final rounding.
// The frequencies come from a RopeTable built once from the model config (model/rope_scaling.h holds HF's
// rope_scaling rules); the kernel knows nothing of configs.
#pragma once

#include <cstdint>
#include <vector>

namespace tsp::kernels {

struct RopeTable {
  std::vector<double> inv_freq;   // [head_dim / 2]
  double attention_factor = 1.0;  // HF's attention_scaling: cos and sin are both multiplied by it

  // HF's default RoPE: inv_freq[i] = theta^(-2i/d).
  static RopeTable standard(int64_t head_dim, double theta);
  int64_t head_dim() const { return 2 * int64_t(inv_freq.size()); }
};

// x: [n, heads, d] rotated (and scaled) in place; pos: [n]; d must equal rope.head_dim().
template <class T>
void rope_forward(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, const RopeTable& rope);

// The adjoint, applied in place to the gradient dx: [n, heads, d]. The rotation is orthogonal, so its adjoint
// is the inverse rotation, times the same scale.
template <class T>
void rope_backward(T* dx, const int64_t* pos, int64_t n, int64_t heads, int64_t d, const RopeTable& rope);

}  // namespace tsp::kernels

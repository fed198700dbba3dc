// Rotary position embedding, HF "rotate-half" convention: for pair (i, i + d/2), angle = pos * theta^(-2i/d),
//   x'[i] = x[i] cos - x[i+d/2] sin,   x'[i+d/2] = x[i+d/2] cos + x[i] sin.
// Every token carries its own GLOBAL position (parallel layouts hold non-contiguous tokens).
// Angles are computed in double whatever T is, so float and double differ only by the final rounding.
#pragma once

#include <cstdint>

namespace tsp::kernels {

// x: [n, heads, d] rotated in place; pos: [n].
template <class T>
void rope_forward(T* x, const int64_t* pos, int64_t n, int64_t heads, int64_t d, double theta);

// The adjoint (inverse rotation) applied in place to the gradient dx: [n, heads, d].
template <class T>
void rope_backward(T* dx, const int64_t* pos, int64_t n, int64_t heads, int64_t d, double theta);

}  // namespace tsp::kernels

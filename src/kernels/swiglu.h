// SwiGLU gate: h = silu(g) * u with silu(g) = g * sigmoid(g) (HF LlamaMLP: down(act(gate(x)) * up(x))).
#pragma once

#include <cstdint>

namespace tsp::kernels {

// Elementwise over `count` values.
template <class T>
void swiglu_forward(T* h, const T* g, const T* u, int64_t count);

// Accumulates: dg += dh * u * silu'(g); du += dh * silu(g).
template <class T>
void swiglu_backward(T* dg, T* du, const T* dh, const T* g, const T* u, int64_t count);

}  // namespace tsp::kernels

// RMSNorm as in HF LlamaRMSNorm: out = w * x / sqrt(mean(x^2) + eps), statistics in the kernel's precision.
#pragma once

#include <cstdint>

namespace tsp::kernels {

// x, out: [n, h]; w: [h]; rstd: [n] (saved for the backward).
template <class T>
void rmsnorm_forward(T* out, T* rstd, const T* x, const T* w, int64_t n, int64_t h, double eps);

// Accumulates: dx += d(loss)/dx, dw += d(loss)/dw (dw may be null).
template <class T>
void rmsnorm_backward(T* dx, T* dw, const T* dout, const T* x, const T* w, const T* rstd, int64_t n,
                      int64_t h);

}  // namespace tsp::kernels

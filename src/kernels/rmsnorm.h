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

// The same norm over the rows of [rows, d] in place, one weight vector w[d] for every row: Qwen3's per-head
// q_norm / k_norm (rows = tokens x heads, d = head_dim). Nothing is saved: the rows are short, so the
// backward recomputes each row's statistics from the forward's input x.
template <class T>
void rmsnorm_rows_inplace(T* x, const T* w, int64_t rows, int64_t d, double eps);

// dx holds d(loss)/d(out) on entry and d(loss)/d(x) on return; dw += d(loss)/dw (dw may be null).
template <class T>
void rmsnorm_rows_backward_inplace(T* dx, T* dw, const T* x, const T* w, int64_t rows, int64_t d, double eps);

}  // namespace tsp::kernels

// GEMM through CBLAS (OpenBLAS), row-major, and the linear layer built on it.
// Weights use the Hugging Face layout W[out, in]; activations are row-major [tokens, features].
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/weight_ref.h"

namespace tsp::kernels {

// C[m,n] = alpha * op(A) op(B) + beta * C, row-major; op(X) = X or X^T.
template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc);

// The linear layer's products follow kernels::matmul_precision() for float (bf16: operands rounded to bf16,
// fp32 accumulation, on oneDNN; kernels/matmul_precision.h); gemm itself is always cblas_sgemm/dgemm.
// y[n, out] = x[n, in] · w[out, in]^T   (accumulate: y += ...); y's rows are ldy apart (0: out), so that a
// weight shard can fill its columns of a wider output (the vocabulary heads' logits). w may be bf16 bits
// (kernels/weight_ref.h) only under bf16 products: it is then used as it is.
template <class T>
void linear_forward(T* y, const T* x, WeightRef<std::type_identity_t<T>> w, int64_t n, int64_t in,
                    int64_t out, bool accumulate = false, int64_t ldy = 0);

// dx[n, in] += dy[n, out] · w ;  dw[out, in] += dy^T · x.  Either output may be null (not wanted).
template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, WeightRef<std::type_identity_t<T>> w, int64_t n,
                     int64_t in, int64_t out);

// FLOPs of one [m,k]x[k,n] product (2mnk), for throughput reports.
inline double gemm_flops(int64_t m, int64_t n, int64_t k) {
  return 2.0 * double(m) * double(n) * double(k);
}

}  // namespace tsp::kernels

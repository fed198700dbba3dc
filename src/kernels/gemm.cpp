#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <climits>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/bf16.h"
#include "kernels/blocked_weights.h"
#include "kernels/frozen_weights.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/product_paths.h"

namespace tsp::kernels {

namespace {

// OpenBLAS is built with 32-bit blasint here; a silently truncated dimension would read out of bounds.
blasint to_blas_int(int64_t v, const char* what) {
  TSP_CHECK(v >= 0 && v <= INT_MAX, "gemm: {} = {} does not fit a 32-bit BLAS integer", what, v);
  return static_cast<blasint>(v);
}

void cblas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, float alpha,
                const float* a, blasint lda, const float* b, blasint ldb, float beta, float* c, blasint ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void cblas_gemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, blasint m, blasint n, blasint k, double alpha,
                const double* a, blasint lda, const double* b, blasint ldb, double beta, double* c,
                blasint ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// Per-thread bf16 copies of the operands of a layer's products (grown, never shrunk: the shapes of a run
// repeat); the backward's two products share dY's.
struct Bf16Operands {
  std::vector<uint16_t> a, b, c;
};

// Traced (category "convert", nested in the caller's compute span): at memory speed, this rounding is a
// visible share of a step once the products run at AMX's rate.
const uint16_t* as_bf16(std::vector<uint16_t>& buf, const float* x, int64_t n) {
  TraceSpan span("linear.bf16_convert", "convert");
  if (int64_t(buf.size()) < n) buf.resize(size_t(n));
  to_bf16(x, n, buf.data());
  return buf.data();
}

Bf16Operands& bf16_operands() {
  thread_local Bf16Operands ops;
  return ops;
}

// The linear layer's contiguous products under --matmul-precision bf16, on operands already rounded to
// bf16: oneDNN with fp32 accumulation into c (alpha 1, beta 0 or 1).
void bf16_product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const uint16_t* a, int64_t lda,
                  const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  onednn::matmul(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

bool bf16_products() {
  return matmul_precision() == MatmulPrecision::bf16;
}

// Under auto each float product takes the path kernels/product_paths.h's table holds for it.
bool auto_products(int64_t n, int64_t in, int64_t out) {
  return matmul_precision() == MatmulPrecision::automatic && n > 0 && out > 0 && in > 0;
}

}  // namespace

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
          const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  TSP_CHECK(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m={} n={} k={}", m, n, k);
  if (m == 0 || n == 0) return;
  TSP_CHECK(ldc >= n, "gemm: ldc={} smaller than n={}", ldc, n);
  if (k == 0) {
    // An empty inner dimension still means C = beta * C; callers with no tokens pass lda = 0, which BLAS
    // rejects.
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = beta == T(0) ? T(0) : beta * c[i * ldc + j];
    return;
  }
  // Row-major leading dimensions are row lengths of the stored (not the transposed) matrices.
  TSP_CHECK(lda >= std::max<int64_t>(1, trans_a ? m : k), "gemm: lda={} too small (trans_a={}, m={}, k={})",
            lda, trans_a, m, k);
  TSP_CHECK(ldb >= std::max<int64_t>(1, trans_b ? k : n), "gemm: ldb={} too small (trans_b={}, k={}, n={})",
            ldb, trans_b, k, n);
  cblas_gemm(trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, to_blas_int(m, "m"),
             to_blas_int(n, "n"), to_blas_int(k, "k"), alpha, a, to_blas_int(lda, "lda"), b,
             to_blas_int(ldb, "ldb"), beta, c, to_blas_int(ldc, "ldc"));
}

// The weight an fp32 product multiplies by: the weight in T, or widened from bf16 when it is held in bf16 —
// a shard that travelled in bf16, or the bf16 policy's copy (frozen_weights.h: under --dtype bf16 the model's
// weights are the bf16 ones even where the products run in fp32).
template <class T>
const T* fp32_weight(const WeightRef<T>& w, int64_t numel) {
  if constexpr (std::is_same_v<T, float>) {
    const uint16_t* b = w.b ? w.b : held_bf16(w.f, numel);
    if (b) {
      thread_local std::vector<float> wide;
      if (int64_t(wide.size()) < numel) wide.resize(size_t(numel));
      from_bf16(b, numel, wide.data());
      return wide.data();
    }
  }
  return w.f;
}

template <class T>
void linear_forward(T* y, const T* x, WeightRef<std::type_identity_t<T>> w, int64_t n, int64_t in,
                    int64_t out, bool accumulate, int64_t ldy) {
  if (ldy == 0) ldy = out;
  const T beta = accumulate ? T(1) : T(0);
  if constexpr (std::is_same_v<T, float>)
    if (auto_products(n, in, out)) return auto_linear_forward(y, x, w, n, in, out, beta, ldy);
  // W[out, in] is exactly (W^T)^T in row-major, so the HF layout needs a transposed B and no copy.
  if constexpr (std::is_same_v<T, float>)
    if (bf16_products() && n > 0 && out > 0 && in > 0) {
      Bf16Operands& ops = bf16_operands();
      // A weight at rest (kernels/frozen_weights.h) was rounded once, a shard received in bf16 on the wire;
      // either is the same bits as rounding it here.
      const uint16_t* w16 = w.b ? w.b : frozen_bf16(w.f, out * in);
      const uint16_t* x16 = as_bf16(ops.a, x, n * in);
      // A weight at rest may also be kept in oneDNN's blocked layout (kernels/blocked_weights.h).
      if (const onednn::BlockedWeight* blocked = w16 ? blocked_bf16(w16, out, in) : nullptr)
        if (onednn::matmul_blocked(n, x16, *blocked, beta, y, ldy)) return;
      return bf16_product(false, true, n, out, in, x16, in, w16 ? w16 : as_bf16(ops.b, w.f, out * in), in,
                          beta, y, ldy);
    }
  gemm<T>(false, true, n, out, in, T(1), x, in, fp32_weight(w, out * in), in, beta, y, ldy);
}

template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, WeightRef<std::type_identity_t<T>> w, int64_t n,
                     int64_t in, int64_t out) {
  if constexpr (std::is_same_v<T, float>)
    if (auto_products(n, in, out)) return auto_linear_backward(dx, dw, dy, x, w, n, in, out);
  if constexpr (std::is_same_v<T, float>)
    if (bf16_products() && n > 0 && out > 0 && in > 0) {
      Bf16Operands& ops = bf16_operands();
      const uint16_t* dy16 = as_bf16(ops.c, dy, n * out);
      if (dx) {
        const uint16_t* w16 = w.b ? w.b : frozen_bf16(w.f, out * in);
        bf16_product(false, false, n, in, out, dy16, out, w16 ? w16 : as_bf16(ops.b, w.f, out * in), in, 1.0f,
                     dx, in);
      }
      if (dw) bf16_product(true, false, out, in, n, dy16, out, as_bf16(ops.a, x, n * in), in, 1.0f, dw, in);
      return;
    }
  if (dx) gemm<T>(false, false, n, in, out, T(1), dy, out, fp32_weight(w, out * in), in, T(1), dx, in);
  if (dw) gemm<T>(true, false, out, in, n, T(1), dy, out, x, in, T(1), dw, in);
}

#define TSP_INSTANTIATE_GEMM(T)                                                                            \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, \
                        T*, int64_t);                                                                      \
  template void linear_forward<T>(T*, const T*, WeightRef<T>, int64_t, int64_t, int64_t, bool, int64_t);   \
  template void linear_backward<T>(T*, T*, const T*, const T*, WeightRef<T>, int64_t, int64_t, int64_t);

TSP_INSTANTIATE_GEMM(float)
TSP_INSTANTIATE_GEMM(double)

}  // namespace tsp::kernels

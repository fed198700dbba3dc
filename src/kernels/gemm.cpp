#include "kernels/gemm.h"

#include <cblas.h>

#include <algorithm>
#include <climits>

#include "core/check.h"

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

template <class T>
void linear_forward(T* y, const T* x, const T* w, int64_t n, int64_t in, int64_t out, bool accumulate) {
  // W[out, in] is exactly (W^T)^T in row-major, so the HF layout needs a transposed B and no copy.
  gemm<T>(false, true, n, out, in, T(1), x, in, w, in, accumulate ? T(1) : T(0), y, out);
}

template <class T>
void linear_backward(T* dx, T* dw, const T* dy, const T* x, const T* w, int64_t n, int64_t in, int64_t out) {
  if (dx) gemm<T>(false, false, n, in, out, T(1), dy, out, w, in, T(1), dx, in);
  if (dw) gemm<T>(true, false, out, in, n, T(1), dy, out, x, in, T(1), dw, in);
}

#define TSP_INSTANTIATE_GEMM(T)                                                                            \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, \
                        T*, int64_t);                                                                      \
  template void linear_forward<T>(T*, const T*, const T*, int64_t, int64_t, int64_t, bool);                \
  template void linear_backward<T>(T*, T*, const T*, const T*, const T*, int64_t, int64_t, int64_t);

TSP_INSTANTIATE_GEMM(float)
TSP_INSTANTIATE_GEMM(double)

}  // namespace tsp::kernels

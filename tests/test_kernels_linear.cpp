// GEMM and the linear layer: BLAS call conventions (transposes, strides, alpha/beta) against a naive product,
// finite-difference gradients, and float against double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/gemm.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

// C = alpha op(A) op(B) + beta C on a strided row-major layout, in long double.
template <class T>
void naive_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const T* a, int64_t lda,
                const T* b, int64_t ldb, double beta, T* c, int64_t ldc) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0;
      for (int64_t p = 0; p < k; ++p) {
        const long double av = ta ? a[p * lda + i] : a[i * lda + p];
        const long double bv = tb ? b[j * ldb + p] : b[p * ldb + j];
        s += av * bv;
      }
      c[i * ldc + j] = T(alpha * s + beta * (long double)c[i * ldc + j]);
    }
}

template <class T>
void check_all_transposes(double tol) {
  const int64_t m = 5, n = 7, k = 3;
  std::mt19937_64 rng(11);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      // Padded leading dimensions catch a kernel that assumes packed rows.
      const int64_t a_rows = ta ? k : m, a_cols = ta ? m : k, lda = a_cols + 2;
      const int64_t b_rows = tb ? n : k, b_cols = tb ? k : n, ldb = b_cols + 3;
      const int64_t ldc = n + 1;
      auto a = test::random_vector<T>(a_rows * lda, rng);
      auto b = test::random_vector<T>(b_rows * ldb, rng);
      auto c = test::random_vector<T>(m * ldc, rng);
      auto ref = c;
      gemm<T>(ta, tb, m, n, k, T(0.7), a.data(), lda, b.data(), ldb, T(-1.25), c.data(), ldc);
      naive_gemm<T>(ta, tb, m, n, k, double(T(0.7)), a.data(), lda, b.data(), ldb, -1.25, ref.data(), ldc);
      EXPECT_LE(rel_error(c, ref), tol) << "trans_a=" << ta << " trans_b=" << tb;
      for (int64_t i = 0; i < m; ++i) EXPECT_EQ(c[i * ldc + n], ref[i * ldc + n]) << "padding column written";
    }
}

TEST(Gemm, AllTransposesMatchNaiveWithPaddedStridesDouble) {
  check_all_transposes<double>(1e-14);
}
TEST(Gemm, AllTransposesMatchNaiveWithPaddedStridesFloat) {
  check_all_transposes<float>(1e-6);
}

TEST(Gemm, BetaZeroOverwritesGarbage) {
  const int64_t m = 4, n = 3, k = 6;
  std::mt19937_64 rng(3);
  auto a = test::random_vector<double>(m * k, rng);
  auto b = test::random_vector<double>(k * n, rng);
  std::vector<double> c(m * n, std::numeric_limits<double>::quiet_NaN()), ref(m * n, 0.0);
  gemm<double>(false, false, m, n, k, 1.0, a.data(), k, b.data(), n, 0.0, c.data(), n);
  naive_gemm<double>(false, false, m, n, k, 1.0, a.data(), k, b.data(), n, 0.0, ref.data(), n);
  EXPECT_LE(rel_error(c, ref), 1e-14);
}

TEST(Gemm, EmptyInnerDimensionScalesC) {
  std::vector<double> c = {1, 2, 3, 4, 5, 6};
  gemm<double>(false, false, 2, 3, 0, 1.0, nullptr, 0, nullptr, 3, 2.0, c.data(), 3);
  EXPECT_EQ(c, (std::vector<double>{2, 4, 6, 8, 10, 12}));
  c.assign(6, std::numeric_limits<double>::quiet_NaN());
  gemm<double>(false, false, 2, 3, 0, 1.0, nullptr, 0, nullptr, 3, 0.0, c.data(), 3);
  EXPECT_EQ(c, std::vector<double>(6, 0.0));
}

TEST(Gemm, RejectsTooSmallLeadingDimension) {
  std::vector<double> a(12), b(12), c(12);
  EXPECT_THROW(gemm<double>(false, false, 3, 4, 3, 1.0, a.data(), 2, b.data(), 4, 0.0, c.data(), 4),
               tsp::Error);
  EXPECT_THROW(gemm<double>(false, true, 3, 4, 3, 1.0, a.data(), 3, b.data(), 2, 0.0, c.data(), 4),
               tsp::Error);
  EXPECT_THROW(gemm<double>(false, false, 3, 4, 3, 1.0, a.data(), 3, b.data(), 4, 0.0, c.data(), 3),
               tsp::Error);
}

TEST(Linear, ForwardMatchesNaiveAndAccumulates) {
  const int64_t n = 6, in = 9, out = 5;
  std::mt19937_64 rng(5);
  auto x = test::random_vector<double>(n * in, rng);
  auto w = test::random_vector<double>(out * in, rng);
  auto y0 = test::random_vector<double>(n * out, rng);
  std::vector<double> ref(n * out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      long double s = 0;
      for (int64_t j = 0; j < in; ++j) s += (long double)x[i * in + j] * w[o * in + j];
      ref[i * out + o] = double(s);
    }

  auto y = y0;
  linear_forward(y.data(), x.data(), w.data(), n, in, out);
  EXPECT_LE(rel_error(y, ref), 1e-14);

  y = y0;
  linear_forward(y.data(), x.data(), w.data(), n, in, out, /*accumulate=*/true);
  EXPECT_LE(rel_error(test::minus(y, y0), ref), 1e-14);
}

TEST(Linear, BackwardMatchesFiniteDifferences) {
  const int64_t n = 4, in = 7, out = 6;
  std::mt19937_64 rng(7);
  auto x = test::random_vector<double>(n * in, rng);
  auto w = test::random_vector<double>(out * in, rng);
  const auto r = test::random_vector<double>(n * out, rng);
  std::vector<double> y(n * out);
  auto loss = [&] {
    linear_forward(y.data(), x.data(), w.data(), n, in, out);
    return test::dot(r, y);
  };
  const auto dx_num = test::numerical_gradient(loss, x);
  const auto dw_num = test::numerical_gradient(loss, w);

  // Start from non-zero gradients: the backward must add to them.
  const auto dx0 = test::random_vector<double>(n * in, rng);
  const auto dw0 = test::random_vector<double>(out * in, rng);
  auto dx = dx0, dw = dw0;
  linear_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), n, in, out);
  EXPECT_LE(rel_error(test::minus(dx, dx0), dx_num), 1e-6);
  EXPECT_LE(rel_error(test::minus(dw, dw0), dw_num), 1e-6);
}

TEST(Linear, BackwardSkipsNullOutputs) {
  const int64_t n = 5, in = 4, out = 3;
  std::mt19937_64 rng(9);
  auto x = test::random_vector<double>(n * in, rng);
  auto w = test::random_vector<double>(out * in, rng);
  auto dy = test::random_vector<double>(n * out, rng);
  std::vector<double> dx(n * in), dw(out * in), dx_only(n * in), dw_only(out * in);
  linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out);
  linear_backward(dx_only.data(), static_cast<double*>(nullptr), dy.data(), x.data(), w.data(), n, in, out);
  linear_backward(static_cast<double*>(nullptr), dw_only.data(), dy.data(), x.data(), w.data(), n, in, out);
  EXPECT_EQ(dx_only, dx);
  EXPECT_EQ(dw_only, dw);
}

TEST(Linear, NoTokensLeavesOutputsAlone) {
  const int64_t in = 4, out = 3;
  std::mt19937_64 rng(13);
  auto w = test::random_vector<double>(out * in, rng);
  const auto dw0 = test::random_vector<double>(out * in, rng);
  auto dw = dw0;
  linear_forward<double>(nullptr, nullptr, w.data(), 0, in, out);
  linear_backward<double>(nullptr, dw.data(), nullptr, nullptr, w.data(), 0, in, out);
  EXPECT_EQ(dw, dw0);
}

TEST(Linear, FloatMatchesDouble) {
  const int64_t n = 33, in = 64, out = 48;
  std::mt19937_64 rng(17);
  auto x = test::random_vector<double>(n * in, rng);
  auto w = test::random_vector<double>(out * in, rng);
  auto dy = test::random_vector<double>(n * out, rng);
  auto xf = test::convert<float>(x), wf = test::convert<float>(w), dyf = test::convert<float>(dy);

  std::vector<double> y(n * out), dx(n * in), dw(out * in);
  std::vector<float> yf(n * out), dxf(n * in), dwf(out * in);
  linear_forward(y.data(), x.data(), w.data(), n, in, out);
  linear_forward(yf.data(), xf.data(), wf.data(), n, in, out);
  linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out);
  linear_backward(dxf.data(), dwf.data(), dyf.data(), xf.data(), wf.data(), n, in, out);
  // Inputs rounded to float (2^-24) plus float accumulation over <= 64 terms: ~1e-7 in Frobenius norm.
  EXPECT_LE(rel_error(yf, y), 1e-5);
  EXPECT_LE(rel_error(dxf, dx), 1e-5);
  EXPECT_LE(rel_error(dwf, dw), 1e-5);
}

}  // namespace
}  // namespace tsp::kernels

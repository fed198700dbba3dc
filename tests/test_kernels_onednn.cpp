// bf16 conversions and the oneDNN matrix products (kernels/bf16.h, kernels/onednn_matmul.h): rounding to
// nearest even, every transpose with padded strides, alpha/beta, the bf16 error bound, primitive caching,
// and threads that each run the same shape at once (oneDNN's shared-scratchpad trap).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/bf16.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

TEST(Bf16, RoundsToNearestEvenAndKeepsSpecials) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f), 0x3F80);             // tie: stays on the even 1.0
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1p-8f), 0x3F82);         // tie: up to the even neighbour
  EXPECT_EQ(float_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 0x3F81);  // above the tie
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::infinity()), 0x7F80);
  EXPECT_EQ(float_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // rounds past the largest bf16
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::bit_cast<float>(0x7F800001u)))));  // signalling
  EXPECT_EQ(float_to_bf16(std::bit_cast<float>(0x00010000u)), 0x0001);  // subnormals are kept
  // Every non-NaN bf16 survives the round trip exactly.
  for (uint32_t b = 0; b < 65536; ++b) {
    const float f = bf16_to_float(uint16_t(b));
    if (!std::isnan(f)) {
      ASSERT_EQ(float_to_bf16(f), b) << b;
    }
  }
  std::mt19937_64 rng(3);
  const auto x = test::random_vector<float>(1001, rng, -50, 50);
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  to_bf16(x.data(), int64_t(x.size()), h.data());
  from_bf16(h.data(), int64_t(h.size()), back.data());
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h[i], float_to_bf16(x[i]));
    ASSERT_LE(std::fabs(back[i] - x[i]), std::ldexp(std::fabs(x[i]), -8));  // |rounding| <= u = 2^-8
  }
}

// C = alpha op(A) op(B) + beta C in long double; also |alpha| |op(A)| |op(B)| for the error bound.
template <class In>
void naive(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const In* a, int64_t lda,
           const In* b, int64_t ldb, double beta, std::vector<double>& c, std::vector<double>* abs_ab,
           int64_t ldc) {
  auto val = [](In x) -> long double {
    if constexpr (std::is_same_v<In, uint16_t>)
      return bf16_to_float(x);
    else
      return x;
  };
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      long double s = 0, sa = 0;
      for (int64_t p = 0; p < k; ++p) {
        const long double av = val(ta ? a[p * lda + i] : a[i * lda + p]);
        const long double bv = val(tb ? b[j * ldb + p] : b[p * ldb + j]);
        s += av * bv;
        sa += std::fabs(av * bv);
      }
      c[i * ldc + j] = double(alpha * s + beta * c[i * ldc + j]);
      if (abs_ab) (*abs_ab)[i * ldc + j] = double(std::fabs(alpha) * sa);
    }
}

struct Case {
  bool ta, tb;
  int64_t m, n, k, lda, ldb, ldc;
};

std::vector<Case> cases() {
  std::vector<Case> out;
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (auto [m, n, k] : {std::tuple{5, 7, 3}, std::tuple{64, 48, 256}, std::tuple{1, 33, 17}}) {
        // Padded leading dimensions catch a kernel that assumes packed rows.
        const int64_t lda = (ta ? m : k) + 2, ldb = (tb ? k : n) + 3;
        out.push_back({ta, tb, m, n, k, lda, ldb, n + 1});
      }
  return out;
}

TEST(OnednnMatmul, Fp32AllTransposesAlphaBetaPaddedStrides) {
  std::mt19937_64 rng(11);
  for (const Case& t : cases()) {
    const auto a = test::random_vector<float>((t.ta ? t.k : t.m) * t.lda, rng);
    const auto b = test::random_vector<float>((t.tb ? t.n : t.k) * t.ldb, rng);
    for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.7f, -1.25f}, std::pair{1.f, 1.f}}) {
      auto c = test::random_vector<float>(t.m * t.ldc, rng);
      std::vector<double> ref(c.begin(), c.end());
      onednn::matmul(t.ta, t.tb, t.m, t.n, t.k, alpha, a.data(), t.lda, b.data(), t.ldb, beta, c.data(),
                     t.ldc);
      naive(t.ta, t.tb, t.m, t.n, t.k, alpha, a.data(), t.lda, b.data(), t.ldb, beta, ref, nullptr, t.ldc);
      EXPECT_LE(rel_error(c, ref), 2e-6) << t.ta << t.tb << " " << t.m << "x" << t.n << "x" << t.k;
      for (int64_t i = 0; i < t.m; ++i)
        ASSERT_EQ(c[i * t.ldc + t.n], float(ref[i * t.ldc + t.n])) << "padding";
    }
  }
}

// bf16 inputs, fp32 accumulation. Products of two bf16 values are exact in fp32 (8 + 8 significant bits), so
// against the exact product of the ROUNDED inputs only the fp32 sums err: |error| <= k u32 (|A||B|)_ij with
// u32 = 2^-24. Against the exact product of the fp32 inputs each input's rounding adds at most u = 2^-8:
// |error| <= (2u + u^2 + k u32) (|A||B|)_ij, the bound checked element by element.
TEST(OnednnMatmul, Bf16WithinTheBoundOfItsRoundingAndReductionLength) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  std::mt19937_64 rng(12);
  const double u = 0x1p-8, u32 = 0x1p-24;
  for (const Case& t : cases()) {
    const auto a = test::random_vector<float>((t.ta ? t.k : t.m) * t.lda, rng);
    const auto b = test::random_vector<float>((t.tb ? t.n : t.k) * t.ldb, rng);
    std::vector<uint16_t> ah(a.size()), bh(b.size());
    to_bf16(a.data(), int64_t(a.size()), ah.data());
    to_bf16(b.data(), int64_t(b.size()), bh.data());
    for (auto [alpha, beta] : {std::pair{1.f, 0.f}, std::pair{0.5f, 1.f}}) {
      auto c = test::random_vector<float>(t.m * t.ldc, rng);
      std::vector<double> exact_rounded(c.begin(), c.end()), exact(c.begin(), c.end()), bound(c.size(), 0);
      onednn::matmul(t.ta, t.tb, t.m, t.n, t.k, alpha, ah.data(), t.lda, bh.data(), t.ldb, beta, c.data(),
                     t.ldc);
      naive(t.ta, t.tb, t.m, t.n, t.k, alpha, ah.data(), t.lda, bh.data(), t.ldb, beta, exact_rounded,
            nullptr, t.ldc);
      naive(t.ta, t.tb, t.m, t.n, t.k, alpha, a.data(), t.lda, b.data(), t.ldb, beta, exact, &bound, t.ldc);
      for (int64_t i = 0; i < t.m; ++i)
        for (int64_t j = 0; j < t.n; ++j) {
          const int64_t x = i * t.ldc + j;
          // The beta * C term adds one fp32 rounding of its own.
          const double slack = u32 * std::fabs(exact[x]);
          ASSERT_LE(std::fabs(c[x] - exact_rounded[x]), (t.k + 1) * u32 * bound[x] + slack)
              << "vs rounded inputs at " << i << "," << j << " case " << t.ta << t.tb << " k=" << t.k;
          ASSERT_LE(std::fabs(c[x] - exact[x]), (2 * u + u * u + (t.k + 1) * u32) * bound[x] + slack)
              << "vs fp32 inputs at " << i << "," << j;
        }
    }
  }
}

TEST(OnednnMatmul, EmptyInnerDimensionScalesC) {
  std::vector<float> c = {1, 2, 3, 4}, none;
  onednn::matmul(false, true, 2, 2, 0, 1.f, none.data(), 1, none.data(), 1, 0.5f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0.5f, 1, 1.5f, 2}));
  onednn::matmul(false, true, 2, 2, 0, 1.f, none.data(), 1, none.data(), 1, 0.f, c.data(), 2);
  EXPECT_EQ(c, (std::vector<float>{0, 0, 0, 0}));
}

TEST(OnednnMatmul, PrimitivesAreCachedPerShape) {
  std::vector<float> a(64 * 32, 0.5f), b(48 * 32, 0.25f), c(64 * 48);
  onednn::matmul(false, true, 64, 48, 32, 1.f, a.data(), 32, b.data(), 32, 0.f, c.data(), 48);
  const size_t after_first = onednn::cached_primitives();
  for (int r = 0; r < 5; ++r)
    onednn::matmul(false, true, 64, 48, 32, 1.f, a.data(), 32, b.data(), 32, 0.f, c.data(), 48);
  EXPECT_EQ(onednn::cached_primitives(), after_first);
  EXPECT_FLOAT_EQ(c[0], 32 * 0.125f);
  onednn::matmul(false, true, 32, 48, 32, 1.f, a.data(), 32, b.data(), 32, 0.f, c.data(), 48);
  EXPECT_EQ(onednn::cached_primitives(), after_first + 1);
}

// Several threads running the same shape at once, each on its own data, must each get the single-thread
// answer bit for bit (a primitive shared with a library-managed scratchpad does not).
template <class In>
void concurrent_threads_get_their_own_answers() {
  const int64_t m = 128, n = 256, k = 128;
  const int threads = 4;
  std::mt19937_64 rng(5);
  std::vector<std::vector<In>> a(threads), b(threads);
  std::vector<std::vector<float>> want(threads), got(threads);
  for (int t = 0; t < threads; ++t) {
    const auto af = test::random_vector<float>(m * k, rng), bf = test::random_vector<float>(n * k, rng);
    if constexpr (std::is_same_v<In, uint16_t>) {
      a[t].resize(af.size());
      b[t].resize(bf.size());
      to_bf16(af.data(), m * k, a[t].data());
      to_bf16(bf.data(), n * k, b[t].data());
    } else {
      a[t] = af;
      b[t] = bf;
    }
    want[t].assign(m * n, 0.f);
    onednn::matmul(false, true, m, n, k, 1.f, a[t].data(), k, b[t].data(), k, 0.f, want[t].data(), n);
  }
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      got[t].assign(m * n, 0.f);
      for (int r = 0; r < 20; ++r)
        onednn::matmul(false, true, m, n, k, 1.f, a[t].data(), k, b[t].data(), k, 0.f, got[t].data(), n);
    });
  for (auto& th : pool) th.join();
  for (int t = 0; t < threads; ++t) EXPECT_EQ(got[t], want[t]) << "thread " << t;
}

TEST(OnednnMatmul, ConcurrentThreadsOfOneShapeGetTheirOwnAnswers) {
  concurrent_threads_get_their_own_answers<float>();
  if (onednn::bf16_supported()) concurrent_threads_get_their_own_answers<uint16_t>();
}

TEST(OnednnMatmul, ReportsTheIsaAndTheKernel) {
  EXPECT_FALSE(onednn::cpu_isa().empty());
  EXPECT_FALSE(onednn::implementation(true, 256, 256, 256).empty());
  // oneDNN 2.6 has bf16 products from AVX-512 up; a machine without them says so instead of failing.
  const std::string isa = onednn::cpu_isa();
  if (isa.starts_with("avx512")) {
    EXPECT_TRUE(onednn::bf16_supported()) << isa;
  }
  if (!onednn::bf16_supported()) {
    EXPECT_EQ(onednn::bf16_gemm_flops_per_s(64, 1), 0.0);
    std::vector<uint16_t> a(16, 0);
    std::vector<float> c(16);
    EXPECT_THROW(onednn::matmul(false, true, 4, 4, 4, 1.f, a.data(), 4, a.data(), 4, 0.f, c.data(), 4),
                 Error);
  }
  EXPECT_FALSE(onednn::implementation(false, 256, 256, 256).empty());
}

}  // namespace
}  // namespace tsp::kernels

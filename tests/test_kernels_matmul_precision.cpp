// The linear layer under --matmul-precision (kernels/matmul_precision.h): bf16 products held to the bound of
// their rounding against fp64, fp32 products untouched by the setting, and the parser's refusals.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {
namespace {

// y = x wᵀ (+ y), dx += dy w, dw += dyᵀ x in fp64 from the fp32 inputs, with the sums of |terms| that bound
// the error of each element.
struct Reference {
  std::vector<double> y, dx, dw, abs_y, abs_dx, abs_dw;
};

Reference reference(const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& dy,
                    const std::vector<float>& y0, const std::vector<float>& dx0,
                    const std::vector<float>& dw0, int64_t n, int64_t in, int64_t out) {
  Reference r{std::vector<double>(y0.begin(), y0.end()),
              std::vector<double>(dx0.begin(), dx0.end()),
              std::vector<double>(dw0.begin(), dw0.end()),
              std::vector<double>(y0.size()),
              std::vector<double>(dx0.size()),
              std::vector<double>(dw0.size())};
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t c = 0; c < in; ++c) {
        const double xw = double(x[i * in + c]) * w[o * in + c];
        r.y[i * out + o] += xw;
        r.abs_y[i * out + o] += std::fabs(xw);
        const double dyw = double(dy[i * out + o]) * w[o * in + c];
        r.dx[i * in + c] += dyw;
        r.abs_dx[i * in + c] += std::fabs(dyw);
        const double dyx = double(dy[i * out + o]) * x[i * in + c];
        r.dw[o * in + c] += dyx;
        r.abs_dw[o * in + c] += std::fabs(dyx);
      }
  return r;
}

// Each product rounds both operands to bf16 (relative error u = 2^-8 each, so 2u + u² per term) and sums k
// terms in fp32 ((k+1)·u32 with u32 = 2^-24, the +1 for the accumulation into a non-zero output):
//   |got - exact| <= (2u + u² + (k+1)·u32) · Σ|terms| + u32 · |exact|.
void expect_within_bf16_bound(const std::vector<float>& got, const std::vector<double>& exact,
                              const std::vector<double>& abs_terms, int64_t k, const char* what) {
  const double u = 0x1p-8, u32 = 0x1p-24;
  for (size_t j = 0; j < got.size(); ++j)
    ASSERT_LE(std::fabs(got[j] - exact[j]),
              (2 * u + u * u + (k + 1) * u32) * abs_terms[j] + u32 * std::fabs(exact[j]))
        << what << " element " << j;
}

TEST(MatmulPrecision, Bf16LinearLayerWithinTheBoundOfItsRounding) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  std::mt19937_64 rng(5);
  for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{7, 33, 12}, {64, 128, 96}}) {
    const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng),
               dy = test::random_vector<float>(n * out, rng), y0 = test::random_vector<float>(n * out, rng),
               dx0 = test::random_vector<float>(n * in, rng), dw0 = test::random_vector<float>(out * in, rng);
    const Reference r = reference(x, w, dy, y0, dx0, dw0, n, in, out);
    std::vector<float> y = y0, dx = dx0, dw = dw0, y_fp32 = y0;
    {
      ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
      linear_forward(y.data(), x.data(), w.data(), n, in, out, /*accumulate=*/true);
      linear_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), n, in, out);
    }
    expect_within_bf16_bound(y, r.y, r.abs_y, in, "y");
    expect_within_bf16_bound(dx, r.dx, r.abs_dx, out, "dx");
    expect_within_bf16_bound(dw, r.dw, r.abs_dw, n, "dw");
    // The setting really changes the products: fp32 is far closer to fp64 than the bf16 bound allows.
    linear_forward(y_fp32.data(), x.data(), w.data(), n, in, out, true);
    double e_bf16 = 0, e_fp32 = 0, ref = 0;
    for (size_t j = 0; j < y.size(); ++j) {
      e_bf16 += (y[j] - r.y[j]) * (y[j] - r.y[j]);
      e_fp32 += (y_fp32[j] - r.y[j]) * (y_fp32[j] - r.y[j]);
      ref += r.y[j] * r.y[j];
    }
    EXPECT_GT(std::sqrt(e_bf16 / ref), 1e-4) << "bf16 products look like fp32 ones";
    EXPECT_LT(std::sqrt(e_fp32 / ref), 1e-5);
  }
}

TEST(MatmulPrecision, Fp32AndFp64AreUntouchedByTheSetting) {
  std::mt19937_64 rng(6);
  const int64_t n = 9, in = 17, out = 11;
  const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng);
  std::vector<float> want(size_t(n * out)), got(size_t(n * out));
  gemm<float>(false, true, n, out, in, 1.0f, x.data(), in, w.data(), in, 0.0f, want.data(), out);
  linear_forward(got.data(), x.data(), w.data(), n, in, out);
  EXPECT_EQ(got, want) << "fp32 (the default) is cblas_sgemm";
  if (!onednn::bf16_supported()) return;
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  const std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end());
  std::vector<double> want_d(size_t(n * out)), got_d(size_t(n * out));
  gemm<double>(false, true, n, out, in, 1.0, xd.data(), in, wd.data(), in, 0.0, want_d.data(), out);
  linear_forward(got_d.data(), xd.data(), wd.data(), n, in, out);
  EXPECT_EQ(got_d, want_d) << "fp64 is the reference and never rounds to bf16";
}

TEST(MatmulPrecision, OutputRowStrideFillsOnlyItsColumns) {
  // A vocabulary shard writes its columns of the wider logits (ldy): the same values as a contiguous output,
  // and nothing outside them, in fp32 and in bf16.
  std::mt19937_64 rng(7);
  const int64_t n = 5, in = 24, out = 7, ldy = 19, col0 = 4;
  const auto x = test::random_vector<float>(n * in, rng), w = test::random_vector<float>(out * in, rng);
  for (MatmulPrecision p : {MatmulPrecision::fp32, MatmulPrecision::bf16}) {
    if (p == MatmulPrecision::bf16 && !onednn::bf16_supported()) continue;
    ScopedMatmulPrecision precision(p);
    std::vector<float> dense(size_t(n * out)), wide(size_t(n * ldy), -7.0f);
    linear_forward(dense.data(), x.data(), w.data(), n, in, out);
    linear_forward(wide.data() + col0, x.data(), w.data(), n, in, out, false, ldy);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < ldy; ++j) {
        const float got = wide[size_t(i * ldy + j)];
        if (j < col0 || j >= col0 + out) {
          EXPECT_EQ(got, -7.0f) << to_string(p) << " row " << i << " column " << j << " is not the shard's";
          continue;
        }
        // fp32 is the same cblas_sgemm call; bf16 runs another oneDNN kernel for a strided output (gemm:jit,
        // not brgemm), which sums the same bf16 products in another order: within 2·(in+1)·u32·Σ|terms|.
        double terms = 0;
        for (int64_t c = 0; c < in; ++c) terms += std::fabs(double(x[i * in + c]) * w[(j - col0) * in + c]);
        const double tol =
            p == MatmulPrecision::fp32 ? 0.0 : 2.0 * double(in + 1) * 0x1p-24 * (1 + 0x1p-7) * terms;
        EXPECT_NEAR(got, dense[size_t(i * out + j - col0)], tol)
            << to_string(p) << " row " << i << " column " << j;
      }
  }
}

TEST(MatmulPrecision, ParsesTheAllowedNamesAndRefusesOthers) {
  EXPECT_EQ(parse_matmul_precision("fp32"), MatmulPrecision::fp32);
  EXPECT_EQ(to_string(MatmulPrecision::bf16), "bf16");
  try {
    parse_matmul_precision("fp16");
    FAIL() << "fp16 accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("fp16 is not supported (allowed: fp32, bf16)"), std::string::npos)
        << e.what();
  }
  if (onednn::bf16_supported()) {
    EXPECT_EQ(parse_matmul_precision("bf16"), MatmulPrecision::bf16);
  } else {
    EXPECT_THROW(parse_matmul_precision("bf16"), UsageError);
  }
}

// kernels::onednn runs a product below its one-thread bound on the calling thread (a decode step's few rows:
// waking the OpenMP team costs more than the product): the result is the team's within fp32 rounding, and
// the caller's OpenMP thread count is left as it was.
TEST(MatmulPrecision, SmallProductsRunOnTheCallingThread) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  const int64_t m = 8, n = 48, k = 64;  // 2mnk = 49152 FLOPs, below the default bound
  ASSERT_LT(2.0 * m * n * k, onednn::kDefaultOneThreadFlops);
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<uint16_t> a(size_t(m * k)), b(size_t(k * n));
  for (auto& v : a) v = float_to_bf16(dist(rng));
  for (auto& v : b) v = float_to_bf16(dist(rng));
  std::vector<float> one(size_t(m * n)), team(size_t(m * n));
  const int threads = omp_get_max_threads();
  onednn::matmul(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, one.data(), n);
  EXPECT_EQ(omp_get_max_threads(), threads);
  const double prev = onednn::set_one_thread_flops(0);  // every product on the team
  EXPECT_EQ(prev, onednn::kDefaultOneThreadFlops);
  // The primitive for the team is a new one: the first call's was created for one thread.
  const size_t cached = onednn::cached_primitives();
  onednn::matmul(false, false, m, n, k, 1.f, a.data(), k, b.data(), n, 0.f, team.data(), n);
  EXPECT_EQ(onednn::cached_primitives(), cached + (threads > 1 ? 1 : 0));
  onednn::set_one_thread_flops(prev);
  for (size_t i = 0; i < one.size(); ++i) EXPECT_NEAR(one[i], team[i], 1e-5 * (1.0 + std::abs(team[i]))) << i;
}

}  // namespace
}  // namespace tsp::kernels

// Token-wise kernels: RMSNorm (per token and per head row), RoPE, linear biases, SwiGLU and the
// vocabulary-sharded embedding. Each is checked against a direct formula, its backward against finite
// differences (double), and float against double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/bf16.h"
#include "kernels/bias.h"
#include "kernels/embedding.h"
#include "kernels/frozen_weights.h"
#include "kernels/rmsnorm.h"
#include "kernels/rope.h"
#include "kernels/swiglu.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

// ---------------------------------------------------------------- RMSNorm

TEST(RmsNorm, ForwardMatchesFormula) {
  const int64_t n = 5, h = 11;
  const double eps = 1e-5;
  std::mt19937_64 rng(1);
  auto x = test::random_vector<double>(n * h, rng, -2, 2);
  auto w = test::random_vector<double>(h, rng, 0.5, 1.5);
  std::vector<double> out(n * h), rstd(n), ref(n * h), ref_rstd(n);
  for (int64_t i = 0; i < n; ++i) {
    long double ss = 0;
    for (int64_t j = 0; j < h; ++j) ss += (long double)x[i * h + j] * x[i * h + j];
    ref_rstd[i] = double(1 / std::sqrt(ss / h + eps));
    for (int64_t j = 0; j < h; ++j) ref[i * h + j] = w[j] * x[i * h + j] * ref_rstd[i];
  }
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, h, eps);
  EXPECT_LE(rel_error(out, ref), 1e-14);
  EXPECT_LE(rel_error(rstd, ref_rstd), 1e-14);
}

// Under the bf16 policy the gains (and an embedding table, a bias) are held as bf16 copies that every read
// goes through (kernels/frozen_weights.h, every_read): the kernels then compute, bit for bit, what they
// compute on weights rounded to bf16; a copy that stands for the products only (weights at rest under
// --matmul-precision bf16) leaves these reads on the fp32 weights.
TEST(RmsNorm, HeldBf16GainsAreReadRoundedEmbeddingToo) {
  const int64_t n = 6, h = 40, V = 9;
  std::mt19937_64 rng(3);
  auto x = test::random_vector<float>(n * h, rng, -2, 2);
  auto w = test::random_vector<float>(h, rng, 0.5, 1.5);
  auto table = test::random_vector<float>(V * h, rng, -1, 1);
  std::vector<float> w16(w), table16(table);
  for (float& v : w16) v = bf16_to_float(float_to_bf16(v));
  for (float& v : table16) v = bf16_to_float(float_to_bf16(v));
  const std::vector<int32_t> tokens = {3, 0, 8, 3, 5, 1};
  auto norm = [&](const std::vector<float>& gains) {
    std::vector<float> out(n * h), rstd(n);
    rmsnorm_forward(out.data(), rstd.data(), x.data(), gains.data(), n, h, 1e-5);
    return out;
  };
  auto lookup = [&](const std::vector<float>& t) {
    std::vector<float> out(n * h);
    embedding_forward(out.data(), t.data(), tokens.data(), n, h, 0, V);
    return out;
  };
  const std::vector<float> exact_norm = norm(w), exact_lookup = lookup(table);
  ASSERT_NE(exact_norm, norm(w16));  // the rounding is visible
  {
    FrozenBf16Weights at_rest;  // products only: these reads stay fp32
    at_rest.add(w.data(), h);
    at_rest.add(table.data(), V * h);
    EXPECT_EQ(norm(w), exact_norm);
    EXPECT_EQ(lookup(table), exact_lookup);
  }
  FrozenBf16Weights held(/*every_read=*/true);
  held.add(w.data(), h);
  held.add(table.data(), V * h);
  EXPECT_EQ(norm(w), norm(w16));
  EXPECT_EQ(lookup(table), lookup(table16));
}

TEST(RmsNorm, BackwardMatchesFiniteDifferences) {
  const int64_t n = 4, h = 12;
  const double eps = 1e-5;
  std::mt19937_64 rng(2);
  auto x = test::random_vector<double>(n * h, rng, -2, 2);
  auto w = test::random_vector<double>(h, rng, 0.5, 1.5);
  const auto r = test::random_vector<double>(n * h, rng);
  std::vector<double> out(n * h), rstd(n);
  auto loss = [&] {
    rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, h, eps);
    return test::dot(r, out);
  };
  const auto dx_num = test::numerical_gradient(loss, x);
  const auto dw_num = test::numerical_gradient(loss, w);

  loss();  // rstd for the unperturbed x
  const auto dx0 = test::random_vector<double>(n * h, rng);
  const auto dw0 = test::random_vector<double>(h, rng);
  auto dx = dx0, dw = dw0;
  rmsnorm_backward(dx.data(), dw.data(), r.data(), x.data(), w.data(), rstd.data(), n, h);
  EXPECT_LE(rel_error(test::minus(dx, dx0), dx_num), 1e-6);
  EXPECT_LE(rel_error(test::minus(dw, dw0), dw_num), 1e-6);

  // dw = null (frozen weight) must not change dx.
  auto dx_alone = dx0;
  rmsnorm_backward(dx_alone.data(), static_cast<double*>(nullptr), r.data(), x.data(), w.data(), rstd.data(),
                   n, h);
  EXPECT_EQ(dx_alone, dx);
}

TEST(RmsNorm, FloatMatchesDouble) {
  const int64_t n = 16, h = 64;
  std::mt19937_64 rng(3);
  auto x = test::random_vector<double>(n * h, rng, -2, 2);
  auto w = test::random_vector<double>(h, rng, 0.5, 1.5);
  auto dout = test::random_vector<double>(n * h, rng);
  auto xf = test::convert<float>(x), wf = test::convert<float>(w), doutf = test::convert<float>(dout);
  std::vector<double> out(n * h), rstd(n), dx(n * h), dw(h);
  std::vector<float> outf(n * h), rstdf(n), dxf(n * h), dwf(h);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, h, 1e-6);
  rmsnorm_forward(outf.data(), rstdf.data(), xf.data(), wf.data(), n, h, 1e-6);
  rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, h);
  rmsnorm_backward(dxf.data(), dwf.data(), doutf.data(), xf.data(), wf.data(), rstdf.data(), n, h);
  EXPECT_LE(rel_error(outf, out), 1e-5);
  EXPECT_LE(rel_error(rstdf, rstd), 1e-5);
  EXPECT_LE(rel_error(dxf, dx), 1e-5);
  EXPECT_LE(rel_error(dwf, dw), 1e-5);
}

// Above the OpenMP threshold the dw reduction runs over column slabs (h not a multiple of the slab width):
// it must equal a token-by-token accumulation.
TEST(RmsNorm, ParallelPathMatchesTokenByToken) {
  const int64_t n = 256, h = 300;
  std::mt19937_64 rng(4);
  auto x = test::random_vector<double>(n * h, rng, -2, 2);
  auto w = test::random_vector<double>(h, rng, 0.5, 1.5);
  auto dout = test::random_vector<double>(n * h, rng);
  std::vector<double> out(n * h), rstd(n), dx(n * h), dw(h);
  rmsnorm_forward(out.data(), rstd.data(), x.data(), w.data(), n, h, 1e-6);
  rmsnorm_backward(dx.data(), dw.data(), dout.data(), x.data(), w.data(), rstd.data(), n, h);
  std::vector<double> out1(n * h), rstd1(n), dx1(n * h), dw1(h);
  for (int64_t i = 0; i < n; ++i) {
    rmsnorm_forward(&out1[i * h], &rstd1[i], &x[i * h], w.data(), 1, h, 1e-6);
    rmsnorm_backward(&dx1[i * h], dw1.data(), &dout[i * h], &x[i * h], w.data(), &rstd1[i], 1, h);
  }
  EXPECT_EQ(out, out1);
  EXPECT_EQ(dx, dx1);
  EXPECT_LE(rel_error(dw, dw1), 1e-14);
}

// ---------------------------------------------------------------- RoPE

// Hugging Face apply_rotary_pos_emb, written as in modeling_llama.py: inv_freq = 1 / theta^(arange(0, d, 2) /
// d), emb = cat(freqs, freqs), out = x * cos(emb) + rotate_half(x) * sin(emb), rotate_half(x) = cat(-x2, x1).
std::vector<double> hf_rope(const std::vector<double>& x, const std::vector<int64_t>& pos, int64_t heads,
                            int64_t d, double theta) {
  const int64_t half = d / 2;
  std::vector<double> out(x.size());
  for (std::size_t t = 0; t < pos.size(); ++t)
    for (int64_t hd = 0; hd < heads; ++hd) {
      const double* xv = &x[(t * heads + hd) * d];
      double* ov = &out[(t * heads + hd) * d];
      for (int64_t c = 0; c < d; ++c) {
        const double inv_freq = 1.0 / std::pow(theta, double(2 * (c % half)) / double(d));
        const double emb = double(pos[t]) * inv_freq;
        const double rotated = c < half ? -xv[c + half] : xv[c - half];
        ov[c] = xv[c] * std::cos(emb) + rotated * std::sin(emb);
      }
    }
  return out;
}

TEST(Rope, HandValues) {
  // d = 4, theta = 100: inv_freq = {1, 0.1}; position 2 gives angles {2, 0.2} for pairs (0, 2) and (1, 3).
  std::vector<double> x = {1, 2, 3, 4};
  const int64_t pos = 2;
  rope_forward(x.data(), &pos, 1, 1, 4, RopeTable::standard(4, 100.0));
  const double c0 = std::cos(2.0), s0 = std::sin(2.0), c1 = std::cos(0.2), s1 = std::sin(0.2);
  const std::vector<double> expect = {1 * c0 - 3 * s0, 2 * c1 - 4 * s1, 3 * c0 + 1 * s0, 4 * c1 + 2 * s1};
  EXPECT_LE(rel_error(x, expect), 1e-15);

  std::vector<double> y = {0.5, -1, 2, 7};
  const int64_t zero = 0;
  const auto y0 = y;
  rope_forward(y.data(), &zero, 1, 1, 4, RopeTable::standard(4, 10000.0));
  EXPECT_EQ(y, y0) << "position 0 is the identity";
}

TEST(Rope, MatchesHfRotateHalfAtNonContiguousPositions) {
  const int64_t heads = 3, d = 16;
  const double theta = 500000.0;
  const std::vector<int64_t> pos = {17, 3, 0, 4095, 8, 9};  // a zigzag-like shard: out of order, with gaps
  const int64_t n = int64_t(pos.size());
  std::mt19937_64 rng(5);
  const auto x = test::random_vector<double>(n * heads * d, rng);
  auto y = x;
  rope_forward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, theta));
  EXPECT_LE(rel_error(y, hf_rope(x, pos, heads, d, theta)), 1e-14);

  // Each token depends on its own position only: rotating one token at a time gives the same result.
  for (int64_t t = 0; t < n; ++t) {
    std::vector<double> one(x.begin() + t * heads * d, x.begin() + (t + 1) * heads * d);
    rope_forward(one.data(), &pos[t], 1, heads, d, RopeTable::standard(d, theta));
    EXPECT_EQ(one, std::vector<double>(y.begin() + t * heads * d, y.begin() + (t + 1) * heads * d));
  }
}

// The property attention relies on: q(a) . k(b) depends on a - b only.
TEST(Rope, DotProductDependsOnRelativePosition) {
  const int64_t d = 32;
  std::mt19937_64 rng(6);
  const auto q = test::random_vector<double>(d, rng), k = test::random_vector<double>(d, rng);
  auto rotated_dot = [&](int64_t a, int64_t b) {
    auto qa = q, kb = k;
    rope_forward(qa.data(), &a, 1, 1, d, RopeTable::standard(d, 10000.0));
    rope_forward(kb.data(), &b, 1, 1, d, RopeTable::standard(d, 10000.0));
    return test::dot(test::convert<double>(qa), kb);
  };
  EXPECT_NEAR(rotated_dot(7, 3), rotated_dot(1007, 1003), 1e-12);
  EXPECT_NEAR(rotated_dot(3, 7), rotated_dot(40, 44), 1e-12);
}

TEST(Rope, BackwardInvertsForward) {
  const int64_t n = 7, heads = 2, d = 8;
  std::vector<int64_t> pos = {0, 5, 2, 100, 31, 7, 64};
  std::mt19937_64 rng(7);
  const auto x = test::random_vector<double>(n * heads * d, rng);
  auto y = x;
  rope_forward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  rope_backward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  EXPECT_LE(rel_error(y, x), 1e-15);

  auto yf = test::convert<float>(x);
  rope_forward(yf.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  rope_backward(yf.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  EXPECT_LE(rel_error(yf, x), 1e-6);
}

TEST(Rope, BackwardMatchesFiniteDifferences) {
  const int64_t n = 3, heads = 2, d = 6;
  const std::vector<int64_t> pos = {9, 2, 40};
  std::mt19937_64 rng(8);
  auto x = test::random_vector<double>(n * heads * d, rng);
  const auto r = test::random_vector<double>(n * heads * d, rng);
  auto loss = [&] {
    auto y = x;
    rope_forward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
    return test::dot(r, y);
  };
  const auto dx_num = test::numerical_gradient(loss, x);
  auto dx = r;  // rope_backward maps d(loss)/d(out) to d(loss)/d(x) in place
  rope_backward(dx.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  EXPECT_LE(rel_error(dx, dx_num), 1e-6);
}

TEST(Rope, FloatMatchesDouble) {
  const int64_t n = 9, heads = 4, d = 64;
  std::vector<int64_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = 1000 * t + 3;
  std::mt19937_64 rng(9);
  const auto x = test::random_vector<double>(n * heads * d, rng);
  auto y = x;
  auto yf = test::convert<float>(x);
  rope_forward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  rope_forward(yf.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  // Angles are formed in double for both, so only input and output rounding to float remain (~1e-7).
  EXPECT_LE(rel_error(yf, y), 1e-6);
  rope_backward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  rope_backward(yf.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  EXPECT_LE(rel_error(yf, y), 1e-6);
}

TEST(Rope, ParallelPathMatchesTokenByToken) {
  const int64_t n = 130, heads = 8, d = 64;  // n * heads * d > 2^16
  std::vector<int64_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = (t * 37) % 1000;
  std::mt19937_64 rng(10);
  const auto x = test::random_vector<float>(n * heads * d, rng);
  auto y = x, y1 = x;
  rope_forward(y.data(), pos.data(), n, heads, d, RopeTable::standard(d, 10000.0));
  for (int64_t t = 0; t < n; ++t)
    rope_forward(&y1[t * heads * d], &pos[t], 1, heads, d, RopeTable::standard(d, 10000.0));
  EXPECT_EQ(y, y1);
}

TEST(Rope, RejectsOddHeadDim) {
  std::vector<double> x(3);
  const int64_t pos = 1;
  EXPECT_THROW(rope_forward(x.data(), &pos, 1, 1, 3, RopeTable::standard(3, 10000.0)), tsp::Error);
}

TEST(Rope, AttentionFactorScalesForwardAndItsAdjoint) {
  // yarn-style table: arbitrary frequencies and a cos/sin scale s; forward = s x rotation, and the backward
  // is its adjoint (checked by finite differences), not its inverse.
  const int64_t n = 3, heads = 2, d = 8;
  const std::vector<int64_t> pos = {0, 7, 300};
  RopeTable t;
  t.inv_freq = {1.0, 0.3, 0.017, 2e-4};
  t.attention_factor = 1.25;
  std::mt19937_64 rng(21);
  auto x = test::random_vector<double>(n * heads * d, rng);
  auto y = x, y1 = x;
  rope_forward(y.data(), pos.data(), n, heads, d, t);
  RopeTable unscaled = t;
  unscaled.attention_factor = 1.0;
  rope_forward(y1.data(), pos.data(), n, heads, d, unscaled);
  for (auto& v : y1) v *= 1.25;
  EXPECT_LE(rel_error(y, y1), 1e-15);
  // Position 0: only the scale.
  for (int64_t c = 0; c < heads * d; ++c) EXPECT_DOUBLE_EQ(y[size_t(c)], 1.25 * x[size_t(c)]);

  const auto r = test::random_vector<double>(n * heads * d, rng);
  auto loss = [&] {
    auto z = x;
    rope_forward(z.data(), pos.data(), n, heads, d, t);
    return test::dot(r, z);
  };
  const auto dx_num = test::numerical_gradient(loss, x);
  auto dx = r;
  rope_backward(dx.data(), pos.data(), n, heads, d, t);
  EXPECT_LE(rel_error(dx, dx_num), 1e-6);
}

TEST(Rope, RejectsATableOfAnotherHeadDim) {
  std::vector<double> x(8);
  const int64_t pos = 1;
  EXPECT_THROW(rope_forward(x.data(), &pos, 1, 1, 8, RopeTable::standard(4, 10000.0)), tsp::Error);
}

// ---------------------------------------------------------------- per-head RMSNorm (Qwen3 q/k norms)

TEST(RmsNormRows, MatchesTheTokenNormOnEveryRow) {
  const int64_t rows = 6, d = 8;
  const double eps = 1e-6;
  std::mt19937_64 rng(22);
  const auto x = test::random_vector<double>(rows * d, rng, -2, 2);
  const auto w = test::random_vector<double>(d, rng, 0.5, 1.5);
  std::vector<double> ref(rows * d), rstd(rows);
  rmsnorm_forward(ref.data(), rstd.data(), x.data(), w.data(), rows, d, eps);
  auto y = x;
  rmsnorm_rows_inplace(y.data(), w.data(), rows, d, eps);
  EXPECT_EQ(y, ref);
}

TEST(RmsNormRows, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 5, d = 6;
  const double eps = 1e-6;
  std::mt19937_64 rng(23);
  auto x = test::random_vector<double>(rows * d, rng, -2, 2);
  auto w = test::random_vector<double>(d, rng, 0.5, 1.5);
  const auto r = test::random_vector<double>(rows * d, rng);
  auto loss = [&] {
    auto y = x;
    rmsnorm_rows_inplace(y.data(), w.data(), rows, d, eps);
    return test::dot(r, y);
  };
  const auto dx_num = test::numerical_gradient(loss, x);
  const auto dw_num = test::numerical_gradient(loss, w);
  const auto dw0 = test::random_vector<double>(d, rng);
  auto dx = r, dw = dw0;
  rmsnorm_rows_backward_inplace(dx.data(), dw.data(), x.data(), w.data(), rows, d, eps);
  EXPECT_LE(rel_error(dx, dx_num), 1e-6);
  EXPECT_LE(rel_error(test::minus(dw, dw0), dw_num), 1e-6);
}

TEST(RmsNormRows, ParallelPathMatchesRowByRow) {
  const int64_t rows = 1100, d = 64;  // rows * d > 2^16
  const double eps = 1e-6;
  std::mt19937_64 rng(24);
  const auto x = test::random_vector<float>(rows * d, rng);
  const auto w = test::random_vector<float>(d, rng, 0.5, 1.5);
  const auto g = test::random_vector<float>(rows * d, rng);
  auto dx = g, dx1 = g;
  std::vector<float> dw(d, 0.f), dw1(d, 0.f);
  rmsnorm_rows_backward_inplace(dx.data(), dw.data(), x.data(), w.data(), rows, d, eps);
  for (int64_t i = 0; i < rows; ++i)
    rmsnorm_rows_backward_inplace(&dx1[i * d], dw1.data(), &x[i * d], w.data(), 1, d, eps);
  EXPECT_EQ(dx, dx1);  // every row on its own, bit for bit
  // dw sums the rows in the same order; only the compiler's fused multiply-adds may round differently.
  EXPECT_LE(rel_error(dw, dw1), 1e-6);
}

// ---------------------------------------------------------------- linear bias (Qwen2 q/k/v)

TEST(Bias, ForwardAddsAndBackwardSumsOverRows) {
  const int64_t n = 300, out = 280;  // two column blocks, enough elements for the parallel path
  std::mt19937_64 rng(25);
  const auto b = test::random_vector<double>(out, rng);
  const auto y0 = test::random_vector<double>(n * out, rng);
  auto y = y0;
  bias_forward(y.data(), b.data(), n, out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < out; ++j)
      ASSERT_EQ(y[size_t(i * out + j)], y0[size_t(i * out + j)] + b[size_t(j)]);
  const auto db0 = test::random_vector<double>(out, rng);
  auto db = db0;
  bias_backward(db.data(), y0.data(), n, out);
  for (int64_t j = 0; j < out; ++j) {
    double sum = 0;  // rows in order, then added to what db held
    for (int64_t i = 0; i < n; ++i) sum += y0[size_t(i * out + j)];
    EXPECT_EQ(db[size_t(j)], db0[size_t(j)] + sum);
  }
}

// ---------------------------------------------------------------- SwiGLU

TEST(SwiGlu, ForwardMatchesFormula) {
  const int64_t count = 50;
  std::mt19937_64 rng(11);
  const auto g = test::random_vector<double>(count, rng, -6, 6),
             u = test::random_vector<double>(count, rng, -2, 2);
  std::vector<double> h(count), ref(count);
  for (int64_t i = 0; i < count; ++i) ref[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
  swiglu_forward(h.data(), g.data(), u.data(), count);
  EXPECT_LE(rel_error(h, ref), 1e-15);
}

TEST(SwiGlu, BackwardMatchesFiniteDifferences) {
  const int64_t count = 40;
  std::mt19937_64 rng(12);
  auto g = test::random_vector<double>(count, rng, -5, 5), u = test::random_vector<double>(count, rng, -2, 2);
  const auto r = test::random_vector<double>(count, rng);
  std::vector<double> h(count);
  auto loss = [&] {
    swiglu_forward(h.data(), g.data(), u.data(), count);
    return test::dot(r, h);
  };
  const auto dg_num = test::numerical_gradient(loss, g);
  const auto du_num = test::numerical_gradient(loss, u);
  const auto dg0 = test::random_vector<double>(count, rng), du0 = test::random_vector<double>(count, rng);
  auto dg = dg0, du = du0;
  swiglu_backward(dg.data(), du.data(), r.data(), g.data(), u.data(), count);
  EXPECT_LE(rel_error(test::minus(dg, dg0), dg_num), 1e-6);
  EXPECT_LE(rel_error(test::minus(du, du0), du_num), 1e-6);
}

TEST(SwiGlu, FloatMatchesDouble) {
  const int64_t count = 1000;
  std::mt19937_64 rng(13);
  const auto g = test::random_vector<double>(count, rng, -8, 8),
             u = test::random_vector<double>(count, rng, -2, 2);
  const auto dh = test::random_vector<double>(count, rng);
  const auto gf = test::convert<float>(g), uf = test::convert<float>(u), dhf = test::convert<float>(dh);
  std::vector<double> h(count), dg(count), du(count);
  std::vector<float> hf(count), dgf(count), duf(count);
  swiglu_forward(h.data(), g.data(), u.data(), count);
  swiglu_forward(hf.data(), gf.data(), uf.data(), count);
  swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), count);
  swiglu_backward(dgf.data(), duf.data(), dhf.data(), gf.data(), uf.data(), count);
  EXPECT_LE(rel_error(hf, h), 1e-5);
  EXPECT_LE(rel_error(dgf, dg), 1e-5);
  EXPECT_LE(rel_error(duf, du), 1e-5);
}

TEST(SwiGlu, SaturatedGatesStayFinite) {
  const std::vector<float> g = {-1000.f, -100.f, 100.f, 1000.f}, u = {2.f, 2.f, 2.f, 2.f},
                           dh = {1.f, 1.f, 1.f, 1.f};
  std::vector<float> h(4), dg(4), du(4);
  swiglu_forward(h.data(), g.data(), u.data(), 4);
  swiglu_backward(dg.data(), du.data(), dh.data(), g.data(), u.data(), 4);
  // silu(g) -> 0 and silu'(g) -> 0 as g -> -inf; silu(g) -> g and silu'(g) -> 1 as g -> +inf.
  const std::vector<float> h_ref = {0.f, 0.f, 200.f, 2000.f}, dg_ref = {0.f, 0.f, 2.f, 2.f},
                           du_ref = {0.f, 0.f, 100.f, 1000.f};
  for (int i = 0; i < 4; ++i) {
    EXPECT_NEAR(h[i], h_ref[i], 1e-3f) << i;
    EXPECT_NEAR(dg[i], dg_ref[i], 1e-3f) << i;
    EXPECT_NEAR(du[i], du_ref[i], 1e-3f) << i;
  }
}

// ---------------------------------------------------------------- Embedding

TEST(Embedding, VocabularyShardsComposeToTheWholeTable) {
  const int64_t vocab = 12, h = 5, n = 8;
  const std::vector<int32_t> tokens = {3, 11, 0, 5, 5, 7, 4, 10};
  std::mt19937_64 rng(14);
  const auto table = test::random_vector<double>(vocab * h, rng);
  std::vector<double> whole(n * h);
  embedding_forward(whole.data(), table.data(), tokens.data(), n, h, 0, vocab);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < h; ++j) EXPECT_EQ(whole[i * h + j], table[tokens[i] * h + j]);

  // Shard [0, 5) then [5, 12): each call writes only its own tokens.
  const double sentinel = 42.0;
  std::vector<double> sharded(n * h, sentinel);
  embedding_forward(sharded.data(), table.data(), tokens.data(), n, h, 0, 5);
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] >= 5) {
      EXPECT_EQ(sharded[i * h], sentinel) << "token " << tokens[i] << " outside shard written";
    }
  embedding_forward(sharded.data(), table.data() + 5 * h, tokens.data(), n, h, 5, 7);
  EXPECT_EQ(sharded, whole);
}

TEST(Embedding, BackwardMatchesFiniteDifferences) {
  const int64_t row_begin = 3, rows = 6, h = 4;
  const std::vector<int32_t> tokens = {4, 8, 4, 1, 3, 12, 8, 8};  // repeats, and tokens outside [3, 9)
  const int64_t n = int64_t(tokens.size());
  std::mt19937_64 rng(15);
  auto table = test::random_vector<double>(rows * h, rng);
  const auto r = test::random_vector<double>(n * h, rng);
  std::vector<double> out(n * h);
  auto loss = [&] {
    embedding_forward(out.data(), table.data(), tokens.data(), n, h, row_begin, rows);
    return test::dot(r, out);
  };
  const auto dtable_num = test::numerical_gradient(loss, table);
  const auto dtable0 = test::random_vector<double>(rows * h, rng);
  auto dtable = dtable0;
  embedding_backward(dtable.data(), r.data(), tokens.data(), n, h, row_begin, rows);
  EXPECT_LE(rel_error(test::minus(dtable, dtable0), dtable_num), 1e-6);
}

TEST(Embedding, FloatMatchesDouble) {
  const int64_t vocab = 20, h = 16;
  const std::vector<int32_t> tokens = {1, 19, 7, 7, 0, 13};
  const int64_t n = int64_t(tokens.size());
  std::mt19937_64 rng(16);
  const auto table = test::random_vector<double>(vocab * h, rng),
             dout = test::random_vector<double>(n * h, rng);
  const auto tablef = test::convert<float>(table), doutf = test::convert<float>(dout);
  std::vector<double> out(n * h), dtable(vocab * h);
  std::vector<float> outf(n * h), dtablef(vocab * h);
  embedding_forward(out.data(), table.data(), tokens.data(), n, h, 0, vocab);
  embedding_forward(outf.data(), tablef.data(), tokens.data(), n, h, 0, vocab);
  embedding_backward(dtable.data(), dout.data(), tokens.data(), n, h, 0, vocab);
  embedding_backward(dtablef.data(), doutf.data(), tokens.data(), n, h, 0, vocab);
  EXPECT_LE(rel_error(outf, out), 1e-7);
  EXPECT_LE(rel_error(dtablef, dtable), 1e-7);
}

// Above the OpenMP threshold threads own table rows; repeated tokens must still sum in token order.
TEST(Embedding, ParallelBackwardMatchesSerialSum) {
  const int64_t vocab = 50, h = 128, n = 600;
  std::mt19937_64 rng(17);
  std::vector<int32_t> tokens(n);
  for (auto& t : tokens) t = int32_t(rng() % 60);  // some fall outside the table: ignored
  const auto dout = test::random_vector<double>(n * h, rng);
  std::vector<double> dtable(vocab * h), ref(vocab * h);
  embedding_backward(dtable.data(), dout.data(), tokens.data(), n, h, 0, vocab);
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < vocab)
      for (int64_t j = 0; j < h; ++j) ref[tokens[i] * h + j] += dout[i * h + j];
  EXPECT_EQ(dtable, ref);
}

}  // namespace
}  // namespace tsp::kernels

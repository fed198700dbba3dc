// The flash attention kernel under --matmul-precision bf16 (bf16 tile products, fp32 softmax and
// accumulators) against fp64 computed from the same fp32 inputs, element by element, within a bound derived
// from the roundings the kernel makes. With u = 2^-8 (bf16) and u32 = 2^-24 (fp32), for query row i:
//   score error     E_i = (2u + u² + (d+1)·u32) · scale · max_j Σ_c |q_ic k_jc|   (Q and K rounded, fp32 sum)
//   P_ij relative   F_i = e^(2 E_i) (1 + γ) - 1, γ = (nk + 4)·u32              (shift and sum both move)
//   out_ic          |err| <= ((1 + u)² (1 + F_i)(1 + γ) - 1) · Σ_j P_ij |v_jc|    (P and V rounded)
//   lse_i           |err| <= E_i + γ + u32 |lse_i|
// The backward recomputes P from the given lse (F_i with E_i + u32|lse_i| in place of 2 E_i), rounds P, dO,
// V, K, Q and dS to bf16 and accumulates in fp32:
//   dP_ij = dO_i·v_j    |err| <= ε_ij = (2u + u² + (d+1)·u32) Σ_c |dO_ic v_jc|
//   D_i = dO_i·out_i    |err| <= Δ_i = (d+2)·u32 Σ_c |dO_ic out_ic|
//   dS_ij               |err| <= B_ij = P_ij [F_i |dP_ij - D_i| + (1 + F_i)(ε_ij + Δ_i)(1 + 3u32)
//                                               + 3u32 (1 + F_i)|dP_ij - D_i|]
//   dQ_ic = scale Σ_j dS_ij k_jc   |err| <= scale Σ_j (B_ij + (2u + u² + (nk+2)·u32 (1+u)²) M_ij) |k_jc|
//                                            + 2 u32 |dQ_ic|, with M_ij = |dS_ij| + B_ij
//   dK like dQ with i and j exchanged and q for k; dV_jc like out with Σ_i P_ij |dO_ic|.
#include <gtest/gtest.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "attention_test_util.h"
#include "kernel_test_util.h"
#include "kernels/attention.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {
namespace {

constexpr double u = 0x1p-8, u32 = 0x1p-24;

struct Case {
  AttentionShape s;
  AttentionBlocks blocks;
};

struct Inputs {
  std::vector<float> q, k, v, dout;
  std::vector<int64_t> pos;
};

Inputs make_inputs(const AttentionShape& s, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Inputs in{test::random_vector<float>(s.nq * s.n_heads * s.head_dim, rng),
            test::random_vector<float>(s.nk * s.n_kv_heads * s.head_dim, rng),
            test::random_vector<float>(s.nk * s.n_kv_heads * s.head_dim, rng),
            test::random_vector<float>(s.nq * s.n_heads * s.head_dim, rng),
            std::vector<int64_t>(size_t(s.nq))};
  std::iota(in.pos.begin(), in.pos.end(), 0);
  return in;
}

// fp64 attention with everything the bound needs, for query i, head h, key j.
struct Exact {
  const AttentionShape& s;
  const Inputs& in;
  double scale;
  int64_t d() const { return s.head_dim; }
  double q(int64_t i, int64_t h, int64_t c) const { return in.q[size_t((i * s.n_heads + h) * d() + c)]; }
  double dout(int64_t i, int64_t h, int64_t c) const {
    return in.dout[size_t((i * s.n_heads + h) * d() + c)];
  }
  double k(int64_t j, int64_t h, int64_t c) const {
    return in.k[size_t((j * s.n_kv_heads + h / (s.n_heads / s.n_kv_heads)) * d() + c)];
  }
  double v(int64_t j, int64_t h, int64_t c) const {
    return in.v[size_t((j * s.n_kv_heads + h / (s.n_heads / s.n_kv_heads)) * d() + c)];
  }
};

TEST(AttentionBf16, ForwardAndBackwardWithinTheBoundOfTheirRounding) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  // Small blocks: full tiles (fixed-shape primitives) and edge and diagonal tiles (any-shape ones), GQA, and
  // enough work for a thread team (the per-thread dQ copies). Then the library's default blocks.
  for (const Case& cs : {Case{{150, 150, 4, 2, 32}, {64, 32}}, Case{{300, 300, 2, 1, 64}, {}}}) {
    const AttentionShape& s = cs.s;
    const Inputs in = make_inputs(s, 11 + uint64_t(s.nq));
    const double scale = 1.0 / std::sqrt(double(s.head_dim));
    const Exact x{s, in, scale};
    const int64_t nq = s.nq, nk = s.nk, H = s.n_heads, d = s.head_dim;
    const double gamma = double(nk + 4) * u32;

    // fp64 forward: P, lse, out, and the per-row score error E.
    std::vector<double> P(size_t(H * nq * nk), 0.0), lse(size_t(nq * H)), out(size_t(nq * H * d), 0.0),
        E(size_t(nq * H));
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        double m = -INFINITY, abs_max = 0;
        std::vector<double> sc(size_t(i + 1));
        for (int64_t j = 0; j <= i; ++j) {
          double dot = 0, abs = 0;
          for (int64_t c = 0; c < d; ++c)
            dot += x.q(i, h, c) * x.k(j, h, c), abs += std::fabs(x.q(i, h, c) * x.k(j, h, c));
          sc[size_t(j)] = scale * dot;
          m = std::max(m, scale * dot);
          abs_max = std::max(abs_max, scale * abs);
        }
        double l = 0;
        for (int64_t j = 0; j <= i; ++j) l += std::exp(sc[size_t(j)] - m);
        lse[size_t(i * H + h)] = m + std::log(l);
        E[size_t(i * H + h)] = (2 * u + u * u + double(d + 1) * u32) * abs_max;
        for (int64_t j = 0; j <= i; ++j) {
          const double p = std::exp(sc[size_t(j)] - m) / l;
          P[size_t((h * nq + i) * nk + j)] = p;
          for (int64_t c = 0; c < d; ++c) out[size_t((i * H + h) * d + c)] += p * x.v(j, h, c);
        }
      }

    std::vector<float> got_out(out.size()), got_lse(lse.size());
    {
      ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
      attention_forward(got_out.data(), got_lse.data(), in.q.data(), in.k.data(), in.v.data(), in.pos.data(),
                        in.pos.data(), s, scale, cs.blocks);
    }
    double worst_fraction = 0;  // how much of its bound the worst element uses
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t h = 0; h < H; ++h) {
        const double Ei = E[size_t(i * H + h)], Fi = std::exp(2 * Ei) * (1 + gamma) - 1;
        const double l_bound = Ei + gamma + u32 * std::fabs(lse[size_t(i * H + h)]);
        ASSERT_LE(std::fabs(got_lse[size_t(i * H + h)] - lse[size_t(i * H + h)]), l_bound)
            << "lse of query " << i << " head " << h;
        for (int64_t c = 0; c < d; ++c) {
          double terms = 0;
          for (int64_t j = 0; j <= i; ++j)
            terms += P[size_t((h * nq + i) * nk + j)] * std::fabs(x.v(j, h, c));
          const double bound = ((1 + u) * (1 + u) * (1 + Fi) * (1 + gamma) - 1) * terms;
          const double err =
              std::fabs(got_out[size_t((i * H + h) * d + c)] - out[size_t((i * H + h) * d + c)]);
          ASSERT_LE(err, bound) << "out of query " << i << " head " << h << " column " << c;
          worst_fraction = std::max(worst_fraction, err / bound);
        }
      }
    // The bound is not vacuous: the kernel really rounds to bf16, and uses a fair share of what it may.
    EXPECT_GT(worst_fraction, 0.02) << "the forward looks like fp32, not bf16";

    // fp64 backward from the fp32 out and lse the kernel is given.
    std::vector<float> out_f(out.begin(), out.end()), lse_f(lse.begin(), lse.end());
    std::vector<double> dq(size_t(nq * H * d), 0.0), dk(size_t(nk * s.n_kv_heads * d), 0.0),
        dv(dk.size(), 0.0);
    std::vector<double> bq(dq.size(), 0.0), bk(dk.size(), 0.0), bv(dk.size(), 0.0);
    const int64_t group = H / s.n_kv_heads;
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < nq; ++i) {
        const double Ei = E[size_t(i * H + h)];
        const double Fi = std::exp(Ei + u32 * std::fabs(lse[size_t(i * H + h)])) * (1 + gamma) - 1;
        double D = 0, D_abs = 0;
        for (int64_t c = 0; c < d; ++c) {
          D += x.dout(i, h, c) * out_f[size_t((i * H + h) * d + c)];
          D_abs += std::fabs(x.dout(i, h, c) * out_f[size_t((i * H + h) * d + c)]);
        }
        const double Delta = double(d + 2) * u32 * D_abs;
        for (int64_t j = 0; j <= i; ++j) {
          const double p = P[size_t((h * nq + i) * nk + j)];
          double dp = 0, dp_abs = 0;
          for (int64_t c = 0; c < d; ++c)
            dp += x.dout(i, h, c) * x.v(j, h, c), dp_abs += std::fabs(x.dout(i, h, c) * x.v(j, h, c));
          const double eps = (2 * u + u * u + double(d + 1) * u32) * dp_abs;
          const double ds = p * (dp - D);
          const double B = p * (Fi * std::fabs(dp - D) + (1 + Fi) * (eps + Delta) * (1 + 3 * u32) +
                                3 * u32 * (1 + Fi) * std::fabs(dp - D));
          const double M = std::fabs(ds) + B;
          const double per_q = B + (2 * u + u * u + double(nk + 2) * u32 * (1 + u) * (1 + u)) * M;
          const double per_k = B + (2 * u + u * u + double(nq + 2) * u32 * (1 + u) * (1 + u)) * M;
          const size_t kv = size_t((j * s.n_kv_heads + h / group) * d);
          for (int64_t c = 0; c < d; ++c) {
            dq[size_t((i * H + h) * d + c)] += scale * ds * x.k(j, h, c);
            bq[size_t((i * H + h) * d + c)] += scale * per_q * std::fabs(x.k(j, h, c));
            dk[kv + size_t(c)] += scale * ds * x.q(i, h, c);
            bk[kv + size_t(c)] += scale * per_k * std::fabs(x.q(i, h, c));
            dv[kv + size_t(c)] += p * x.dout(i, h, c);
            bv[kv + size_t(c)] += ((1 + u) * (1 + u) * (1 + Fi) * (1 + double(nq + 2) * u32) - 1) * p *
                                  std::fabs(x.dout(i, h, c));
          }
        }
      }

    std::vector<float> got_dq(dq.size()), got_dk(dk.size()), got_dv(dv.size());
    auto backward = [&] {
      ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
      std::fill(got_dq.begin(), got_dq.end(), 0.f);
      std::fill(got_dk.begin(), got_dk.end(), 0.f);
      std::fill(got_dv.begin(), got_dv.end(), 0.f);
      attention_backward(got_dq.data(), got_dk.data(), got_dv.data(), in.dout.data(), in.q.data(),
                         in.k.data(), in.v.data(), out_f.data(), lse_f.data(), in.pos.data(), in.pos.data(),
                         s, scale, cs.blocks);
    };
    backward();
    for (auto [got, want, bound, what] :
         {std::tuple{&got_dq, &dq, &bq, "dq"}, std::tuple{&got_dk, &dk, &bk, "dk"},
          std::tuple{&got_dv, &dv, &bv, "dv"}}) {
      double worst = 0;
      for (size_t e = 0; e < got->size(); ++e) {
        const double b = (*bound)[e] + 2 * u32 * std::fabs((*want)[e]);
        const double err = std::fabs((*got)[e] - (*want)[e]);
        ASSERT_LE(err, b) << what << " element " << e;
        worst = std::max(worst, err / b);
      }
      EXPECT_GT(worst, 0.02) << what << " looks like fp32, not bf16";
    }
    // Bitwise reproducible for the same thread count (exact resume): the per-thread dQ copies are summed in
    // thread order.
    const std::vector<float> dq1 = got_dq, dk1 = got_dk, dv1 = got_dv;
    backward();
    EXPECT_EQ(got_dq, dq1);
    EXPECT_EQ(got_dk, dk1);
    EXPECT_EQ(got_dv, dv1);
  }
}

// The bf16 softmax rows' edge cases, on unsorted positions (as TSP's zigzag shards and gathered K/V give):
// rows masked out of a whole tile before they saw any key (their probabilities must be zeros, not
// exp(-inf - -inf)), queries that see no key at all (out = 0, lse = -inf, dQ untouched), rows whose length
// is not a multiple of the vector width, and a NaN input, which must reach its output row and no other.
TEST(AttentionBf16, MaskedRowsEmptyQueriesAndNaNs) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  const AttentionShape s{96, 96, 2, 1, 24};
  const AttentionBlocks blocks{16, 32};
  std::vector<int64_t> q_pos(96), k_pos(96);
  std::iota(q_pos.begin(), q_pos.end(), 0);
  std::mt19937_64 rng(5);
  std::shuffle(q_pos.begin(), q_pos.end(), rng);
  std::iota(k_pos.begin(), k_pos.begin() + 48, 56);  // keys 56..103, then 8..55: queries 0..7 see none
  std::iota(k_pos.begin() + 48, k_pos.end(), 8);
  std::vector<float> q = test::random_vector<float>(s.nq * s.n_heads * s.head_dim, rng),
                     k = test::random_vector<float>(s.nk * s.head_dim, rng),
                     v = test::random_vector<float>(s.nk * s.head_dim, rng),
                     dout = test::random_vector<float>(s.nq * s.n_heads * s.head_dim, rng);
  const double scale = 1.0 / std::sqrt(double(s.head_dim));
  const int64_t row = s.n_heads * s.head_dim;
  const auto query_at = [&](int64_t pos) {
    return std::find(q_pos.begin(), q_pos.end(), pos) - q_pos.begin();
  };

  std::vector<double> want(q.size()), want_lse(size_t(s.nq * s.n_heads));
  {
    const auto qd = test::convert<double>(q), kd = test::convert<double>(k), vd = test::convert<double>(v);
    attention_forward_naive(want.data(), want_lse.data(), qd.data(), kd.data(), vd.data(), q_pos.data(),
                            k_pos.data(), s, scale);
  }
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  std::vector<float> out(q.size()), lse(want_lse.size());
  attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), q_pos.data(), k_pos.data(), s,
                    scale, blocks);
  EXPECT_LE(test::rel_error(out.data(), want.data(), int64_t(out.size())), 1e-2);
  for (int64_t pos = 0; pos < 8; ++pos) {
    const int64_t i = query_at(pos);
    for (int64_t h = 0; h < s.n_heads; ++h) EXPECT_EQ(lse[size_t(i * s.n_heads + h)], -INFINITY) << pos;
    for (int64_t c = 0; c < row; ++c) EXPECT_EQ(out[size_t(i * row + c)], 0.0f) << pos;
  }

  std::vector<float> dq(q.size(), 1.0f), dk(k.size()), dv(v.size());
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                     lse.data(), q_pos.data(), k_pos.data(), s, scale, blocks);
  for (int64_t pos = 0; pos < 8; ++pos)
    for (int64_t c = 0; c < row; ++c) EXPECT_EQ(dq[size_t(query_at(pos) * row + c)], 1.0f) << pos;
  for (float x : dk) EXPECT_TRUE(std::isfinite(x));
  for (float x : dv) EXPECT_TRUE(std::isfinite(x));

  // A NaN in one query's head 0 makes that row NaN and leaves its head 1 and every other query finite: in the
  // backward (given the finite out and lse above, so that only the recomputed probabilities carry it) and in
  // the forward.
  const int64_t bad = query_at(50);
  const auto expect_nan_row_only = [&](const std::vector<float>& x, const char* what) {
    for (int64_t i = 0; i < s.nq; ++i)
      for (int64_t h = 0; h < s.n_heads; ++h)
        for (int64_t c = 0; c < s.head_dim; ++c)
          EXPECT_EQ(std::isnan(x[size_t(i * row + h * s.head_dim + c)]), i == bad && h == 0)
              << what << " of query " << i << " head " << h;
  };
  q[size_t(bad * row + 3)] = std::numeric_limits<float>::quiet_NaN();
  std::fill(dq.begin(), dq.end(), 0.0f);
  attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(), v.data(), out.data(),
                     lse.data(), q_pos.data(), k_pos.data(), s, scale, blocks);
  expect_nan_row_only(dq, "dq");
  attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), q_pos.data(), k_pos.data(), s,
                    scale, blocks);
  expect_nan_row_only(out, "out");
  for (int64_t i = 0; i < s.nq; ++i)
    for (int64_t h = 0; h < s.n_heads; ++h)
      EXPECT_EQ(std::isnan(lse[size_t(i * s.n_heads + h)]), i == bad && h == 0) << i << " " << h;
}

// As for fp32 (test_attention.cpp), the bf16 tiles' primitives stay bounded over every sequence length: one
// fixed shape per product for full tiles, one any-shape primitive per product for edge tiles, and the
// trimmed causal-diagonal tiles (block_q rows by a multiple of block_q columns) one fixed shape per product
// for each multiple: here block_k = 2 block_q, so at most 3 x 7 per thread.
TEST(AttentionBf16, TilePrimitivesStayBoundedOverSequenceLengths) {
  if (!onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on " << onednn::cpu_isa();
  ScopedMatmulPrecision bf16(MatmulPrecision::bf16);
  EXPECT_LE(test::primitives_added_over_sequence_lengths({16, 32}), 21u);
}

}  // namespace
}  // namespace tsp::kernels

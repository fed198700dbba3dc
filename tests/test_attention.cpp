// The blocked attention kernel against the naive reference (forward) and against central differences
// (backward), on the position layouts the strategies produce: contiguous, zigzag shards, keys gathered from
// several ranks in rank order, one ring step's remote keys, and shuffled lists with duplicates.
#include "kernels/attention.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "attention_test_util.h"
#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

// Tokens [r*chunk, (r+1)*chunk) and their mirror chunk 2*n_ranks-1-r: the load-balanced causal split.
std::vector<int64_t> zigzag_shard(int64_t rank, int64_t n_ranks, int64_t chunk) {
  std::vector<int64_t> pos;
  for (int64_t c : {rank, 2 * n_ranks - 1 - rank})
    for (int64_t i = 0; i < chunk; ++i) pos.push_back(c * chunk + i);
  return pos;
}

// All shards concatenated in rank order, as an all-gather of K/V delivers them.
std::vector<int64_t> zigzag_gathered(int64_t n_ranks, int64_t chunk) {
  std::vector<int64_t> pos;
  for (int64_t r = 0; r < n_ranks; ++r) {
    auto shard = zigzag_shard(r, n_ranks, chunk);
    pos.insert(pos.end(), shard.begin(), shard.end());
  }
  return pos;
}

std::vector<int64_t> iota_positions(int64_t n, int64_t first) {
  std::vector<int64_t> pos(static_cast<size_t>(n));
  std::iota(pos.begin(), pos.end(), first);
  return pos;
}

struct Layout {
  std::string name;
  std::vector<int64_t> q_pos;
  std::vector<int64_t> k_pos;
  int64_t n_heads;
  int64_t n_kv_heads;
  int64_t head_dim;
  AttentionBlocks blocks;
};

AttentionShape shape_of(const Layout& l) {
  return {static_cast<int64_t>(l.q_pos.size()), static_cast<int64_t>(l.k_pos.size()), l.n_heads, l.n_kv_heads,
          l.head_dim};
}

// Shuffled positions with repeats; query 0 precedes every key, so it must come out as 0 with lse = -inf.
Layout shuffled_layout() {
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<int64_t> pos(3, 60);
  Layout l{"shuffled_mqa", {}, {}, 4, 1, 16, {5, 7}};
  l.q_pos.push_back(0);
  for (int i = 0; i < 22; ++i) l.q_pos.push_back(pos(rng));
  for (int i = 0; i < 41; ++i) l.k_pos.push_back(pos(rng));
  std::shuffle(l.q_pos.begin(), l.q_pos.end(), rng);
  return l;
}

std::vector<Layout> forward_layouts() {
  return {
      {"contiguous_causal", iota_positions(37, 0), iota_positions(37, 0), 4, 4, 8, {8, 16}},
      {"zigzag_shard_vs_gathered_gqa", zigzag_shard(1, 3, 5), zigzag_gathered(3, 5), 4, 2, 8, {4, 6}},
      // Ring step: rank 0's first chunk sees none of rank 2's keys, its mirror chunk sees all of them.
      {"zigzag_remote_shard_gqa3", zigzag_shard(0, 3, 5), zigzag_shard(2, 3, 5), 6, 2, 8, {3, 4}},
      shuffled_layout(),
      {"suffix_queries_with_prefix_cache",
       iota_positions(40, 100),
       iota_positions(140, 0),
       2,
       1,
       12,
       {16, 32}},
      {"default_blocks_not_dividing", iota_positions(300, 0), iota_positions(300, 0), 2, 2, 32, {}},
      {"gathered_default_blocks", zigzag_shard(2, 4, 40), zigzag_gathered(4, 40), 4, 2, 16, {}},
  };
}

template <class T>
struct Inputs {
  std::vector<T> q, k, v;
};

Inputs<double> random_inputs(const AttentionShape& s, uint64_t seed, double q_range = 2.0) {
  std::mt19937_64 rng(seed);
  Inputs<double> in;
  in.q = test::random_vector<double>(s.nq * s.n_heads * s.head_dim, rng, -q_range, q_range);
  in.k = test::random_vector<double>(s.nk * s.n_kv_heads * s.head_dim, rng);
  in.v = test::random_vector<double>(s.nk * s.n_kv_heads * s.head_dim, rng);
  return in;
}

double default_scale(const AttentionShape& s) {
  return 1.0 / std::sqrt(double(s.head_dim));
}

// Splits lse into the -inf pattern (must match exactly) and the finite values (compared by relative error).
template <class T>
void expect_lse_near(const std::vector<T>& got, const std::vector<T>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  std::vector<double> g, w;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool want_empty = want[i] == -std::numeric_limits<T>::infinity();
    ASSERT_EQ(got[i] == -std::numeric_limits<T>::infinity(), want_empty) << what << " lse[" << i << "]";
    if (!want_empty) {
      g.push_back(double(got[i]));
      w.push_back(double(want[i]));
    }
  }
  EXPECT_LE(rel_error(g, w), tol) << what;
}

template <class T>
void check_forward_against_naive(const Layout& l, double tol) {
  const AttentionShape s = shape_of(l);
  const Inputs<double> in64 = random_inputs(s, 11);
  const auto q = test::convert<T>(in64.q), k = test::convert<T>(in64.k), v = test::convert<T>(in64.v);
  std::vector<T> out(q.size()), lse(static_cast<size_t>(s.nq * s.n_heads));
  std::vector<T> out_ref(q.size()), lse_ref(lse.size());
  // Poison the outputs: the kernel must write every entry, including the rows that see no key.
  std::fill(out.begin(), out.end(), T(123));
  std::fill(lse.begin(), lse.end(), T(123));
  attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), l.q_pos.data(), l.k_pos.data(), s,
                    default_scale(s), l.blocks);
  attention_forward_naive(out_ref.data(), lse_ref.data(), q.data(), k.data(), v.data(), l.q_pos.data(),
                          l.k_pos.data(), s, default_scale(s));
  EXPECT_LE(rel_error(out, out_ref), tol) << l.name;
  expect_lse_near(lse, lse_ref, tol, l.name);
}

TEST(AttentionForward, MatchesNaiveDouble) {
  for (const Layout& l : forward_layouts()) check_forward_against_naive<double>(l, 1e-12);
}

TEST(AttentionForward, MatchesNaiveFloat) {
  for (const Layout& l : forward_layouts()) check_forward_against_naive<float>(l, 1e-5);
}

TEST(AttentionForward, QueryWithNoVisibleKeyGivesZeroAndNegInfLse) {
  const Layout l = shuffled_layout();
  const AttentionShape s = shape_of(l);
  const Inputs<double> in = random_inputs(s, 3);
  std::vector<double> out(in.q.size(), 5.0), lse(static_cast<size_t>(s.nq * s.n_heads), 5.0);
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), l.q_pos.data(),
                    l.k_pos.data(), s, default_scale(s), l.blocks);
  const auto it = std::find(l.q_pos.begin(), l.q_pos.end(), 0);
  ASSERT_NE(it, l.q_pos.end());
  const int64_t i = it - l.q_pos.begin();
  for (int64_t h = 0; h < s.n_heads; ++h) {
    EXPECT_EQ(lse[static_cast<size_t>(i * s.n_heads + h)], -std::numeric_limits<double>::infinity());
    for (int64_t c = 0; c < s.head_dim; ++c)
      EXPECT_EQ(out[static_cast<size_t>((i * s.n_heads + h) * s.head_dim + c)], 0.0);
  }
}

TEST(AttentionForward, NoKeysAtAll) {
  const AttentionShape s{5, 0, 2, 1, 4};
  const std::vector<int64_t> q_pos = iota_positions(5, 0);
  std::mt19937_64 rng(1);
  const auto q = test::random_vector<double>(5 * 2 * 4, rng);
  std::vector<double> out(q.size(), 1.0), lse(10, 1.0);
  attention_forward<double>(out.data(), lse.data(), q.data(), nullptr, nullptr, q_pos.data(), nullptr, s,
                            0.5);
  for (double x : out) EXPECT_EQ(x, 0.0);
  for (double x : lse) EXPECT_EQ(x, -std::numeric_limits<double>::infinity());
  std::vector<double> dq(q.size(), 1.0);
  attention_backward<double>(dq.data(), nullptr, nullptr, q.data(), q.data(), nullptr, nullptr, out.data(),
                             lse.data(), q_pos.data(), nullptr, s, 0.5);
  for (double x : dq) EXPECT_EQ(x, 1.0);
}

TEST(AttentionForward, BlockSizesDoNotChangeTheResult) {
  const Layout base{"zigzag", zigzag_shard(1, 4, 9), zigzag_gathered(4, 9), 4, 2, 8, {}};
  const AttentionShape s = shape_of(base);
  const Inputs<double> in = random_inputs(s, 5);
  std::vector<double> out_ref(in.q.size()), lse_ref(static_cast<size_t>(s.nq * s.n_heads));
  attention_forward_naive(out_ref.data(), lse_ref.data(), in.q.data(), in.k.data(), in.v.data(),
                          base.q_pos.data(), base.k_pos.data(), s, default_scale(s));
  for (AttentionBlocks b : {AttentionBlocks{1, 1}, AttentionBlocks{5, 7}, AttentionBlocks{17, 3},
                            AttentionBlocks{18, 72}, AttentionBlocks{1000, 1000}}) {
    std::vector<double> out(in.q.size()), lse(lse_ref.size());
    attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), base.q_pos.data(),
                      base.k_pos.data(), s, default_scale(s), b);
    EXPECT_LE(rel_error(out, out_ref), 1e-12) << b.block_q << "x" << b.block_k;
    expect_lse_near(lse, lse_ref, 1e-12, "blocks");
  }
}

template <class T>
struct Grads {
  std::vector<T> dq, dk, dv;
};

// Forward then backward with dout = r, starting from zero gradients.
template <class T>
Grads<T> analytic_grads(const Layout& l, const Inputs<T>& in, const std::vector<T>& r,
                        AttentionBlocks blocks) {
  const AttentionShape s = shape_of(l);
  std::vector<T> out(in.q.size()), lse(static_cast<size_t>(s.nq * s.n_heads));
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), l.q_pos.data(),
                    l.k_pos.data(), s, default_scale(s), blocks);
  Grads<T> g{std::vector<T>(in.q.size()), std::vector<T>(in.k.size()), std::vector<T>(in.v.size())};
  attention_backward(g.dq.data(), g.dk.data(), g.dv.data(), r.data(), in.q.data(), in.k.data(), in.v.data(),
                     out.data(), lse.data(), l.q_pos.data(), l.k_pos.data(), s, default_scale(s), blocks);
  return g;
}

std::vector<Layout> backward_layouts() {
  return {
      {"contiguous_causal", iota_positions(13, 0), iota_positions(13, 0), 2, 2, 5, {4, 3}},
      {"zigzag_shard_vs_gathered_gqa", zigzag_shard(1, 3, 3), zigzag_gathered(3, 3), 4, 2, 5, {4, 5}},
      {"zigzag_remote_shard_gqa3", zigzag_shard(0, 3, 3), zigzag_shard(2, 3, 3), 6, 2, 4, {2, 4}},
      {"shuffled_mqa", shuffled_layout().q_pos, shuffled_layout().k_pos, 2, 1, 4, {5, 7}},
  };
}

TEST(AttentionBackward, MatchesFiniteDifferences) {
  for (const Layout& l : backward_layouts()) {
    const AttentionShape s = shape_of(l);
    Inputs<double> in = random_inputs(s, 21);
    std::mt19937_64 rng(22);
    const std::vector<double> r = test::random_vector<double>(static_cast<int64_t>(in.q.size()), rng);
    const Grads<double> g = analytic_grads(l, in, r, l.blocks);

    std::vector<double> out(in.q.size()), lse(static_cast<size_t>(s.nq * s.n_heads));
    const auto loss = [&] {
      attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), l.q_pos.data(),
                        l.k_pos.data(), s, default_scale(s), l.blocks);
      return test::dot(r, out);
    };
    EXPECT_LE(rel_error(g.dq, test::numerical_gradient(loss, in.q)), 1e-6) << l.name << " dq";
    EXPECT_LE(rel_error(g.dk, test::numerical_gradient(loss, in.k)), 1e-6) << l.name << " dk";
    EXPECT_LE(rel_error(g.dv, test::numerical_gradient(loss, in.v)), 1e-6) << l.name << " dv";
  }
}

TEST(AttentionBackward, FloatAgreesWithDouble) {
  const Layout l{"gathered", zigzag_shard(1, 2, 24), zigzag_gathered(2, 24), 4, 2, 16, {16, 24}};
  const AttentionShape s = shape_of(l);
  const Inputs<double> in64 = random_inputs(s, 31);
  std::mt19937_64 rng(32);
  const auto r64 = test::random_vector<double>(static_cast<int64_t>(in64.q.size()), rng);
  const Inputs<float> in32{test::convert<float>(in64.q), test::convert<float>(in64.k),
                           test::convert<float>(in64.v)};
  const Grads<double> g64 = analytic_grads(l, in64, r64, l.blocks);
  // fp32 tile products on oneDNN (the default) and on OpenBLAS (bench_attention's comparison).
  for (TileProducts products : {TileProducts::onednn, TileProducts::blas}) {
    AttentionBlocks blocks = l.blocks;
    blocks.products = products;
    const Grads<float> g32 = analytic_grads(l, in32, test::convert<float>(r64), blocks);
    const char* name = products == TileProducts::onednn ? "onednn" : "blas";
    EXPECT_LE(rel_error(g32.dq, g64.dq), 1e-5) << name;
    EXPECT_LE(rel_error(g32.dk, g64.dk), 1e-5) << name;
    EXPECT_LE(rel_error(g32.dv, g64.dv), 1e-5) << name;
  }
}

TEST(AttentionBackward, Accumulates) {
  const Layout l{"zigzag", zigzag_shard(0, 2, 7), zigzag_gathered(2, 7), 4, 2, 6, {4, 5}};
  const AttentionShape s = shape_of(l);
  const Inputs<double> in = random_inputs(s, 41);
  std::mt19937_64 rng(42);
  const auto dout = test::random_vector<double>(static_cast<int64_t>(in.q.size()), rng);
  std::vector<double> out(in.q.size()), lse(static_cast<size_t>(s.nq * s.n_heads));
  attention_forward(out.data(), lse.data(), in.q.data(), in.k.data(), in.v.data(), l.q_pos.data(),
                    l.k_pos.data(), s, default_scale(s), l.blocks);
  const auto dq0 = test::random_vector<double>(static_cast<int64_t>(in.q.size()), rng);
  const auto dk0 = test::random_vector<double>(static_cast<int64_t>(in.k.size()), rng);
  const auto dv0 = test::random_vector<double>(static_cast<int64_t>(in.v.size()), rng);
  std::vector<double> dq = dq0, dk = dk0, dv = dv0;
  const auto step = [&] {
    attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), in.q.data(), in.k.data(), in.v.data(),
                       out.data(), lse.data(), l.q_pos.data(), l.k_pos.data(), s, default_scale(s), l.blocks);
  };
  step();
  const std::vector<double> dq1 = dq, dk1 = dk, dv1 = dv;
  step();
  const auto twice = [](std::vector<double> x) {
    for (double& e : x) e *= 2;
    return x;
  };
  EXPECT_LE(rel_error(test::minus(dq, dq0), twice(test::minus(dq1, dq0))), 1e-12);
  EXPECT_LE(rel_error(test::minus(dk, dk0), twice(test::minus(dk1, dk0))), 1e-12);
  EXPECT_LE(rel_error(test::minus(dv, dv0), twice(test::minus(dv1, dv0))), 1e-12);
  EXPECT_GT(rel_error(dq1, dq0), 1e-3);  // the increment is not trivially zero
}

TEST(AttentionBackward, BlockSizesAndThreadCountsDoNotChangeTheResult) {
  // 96 x 288 x 6 heads x 16 = 2.6M multiply-adds per product: large enough for the kernel to use a thread
  // team.
  const Layout l{"gathered", zigzag_shard(2, 3, 48), zigzag_gathered(3, 48), 6, 3, 16, {}};
  const AttentionShape s = shape_of(l);
  const Inputs<double> in = random_inputs(s, 51);
  std::mt19937_64 rng(52);
  const auto r = test::random_vector<double>(static_cast<int64_t>(in.q.size()), rng);
  const Grads<double> ref = analytic_grads(l, in, r, AttentionBlocks{2, 3});
  const int saved_threads = omp_get_max_threads();
  for (int threads : {1, 3}) {
    omp_set_num_threads(threads);
    for (AttentionBlocks b : {AttentionBlocks{16, 20}, AttentionBlocks{7, 13}, AttentionBlocks{}}) {
      const Grads<double> g = analytic_grads(l, in, r, b);
      EXPECT_LE(rel_error(g.dq, ref.dq), 1e-12) << threads << " threads, " << b.block_q << "x" << b.block_k;
      EXPECT_LE(rel_error(g.dk, ref.dk), 1e-12) << threads << " threads, " << b.block_q << "x" << b.block_k;
      EXPECT_LE(rel_error(g.dv, ref.dv), 1e-12) << threads << " threads, " << b.block_q << "x" << b.block_k;
    }
  }
  omp_set_num_threads(saved_threads);
}

// Exact resume of a training run needs the backward to give the same bits every time for a given thread
// count.
TEST(AttentionBackward, BitwiseReproducibleWithSeveralThreads) {
  const Layout l{"gathered", zigzag_shard(1, 2, 64), zigzag_gathered(2, 64), 4, 2, 16, {}};
  const AttentionShape s = shape_of(l);
  const Inputs<double> in64 = random_inputs(s, 61);
  const Inputs<float> in{test::convert<float>(in64.q), test::convert<float>(in64.k),
                         test::convert<float>(in64.v)};
  std::mt19937_64 rng(62);
  const auto r = test::random_vector<float>(static_cast<int64_t>(in.q.size()), rng);
  const int saved_threads = omp_get_max_threads();
  omp_set_num_threads(3);
  const AttentionBlocks blocks{16, 16};
  const Grads<float> first = analytic_grads(l, in, r, blocks);
  for (int rep = 0; rep < 5; ++rep) {
    const Grads<float> again = analytic_grads(l, in, r, blocks);
    EXPECT_EQ(again.dq, first.dq) << "repetition " << rep;
    EXPECT_EQ(again.dk, first.dk) << "repetition " << rep;
    EXPECT_EQ(again.dv, first.dv) << "repetition " << rep;
  }
  omp_set_num_threads(saved_threads);
}

// The fp32 tiles' oneDNN primitives stay a handful whatever sequence lengths a run meets (a sequence-length
// warm-up, prompts of every length): full tiles have one shape per product and every edge tile shares one
// any-shape primitive per product, so at most 2 x 7 per thread (2 forward + 5 backward products). Caching
// one per tile shape instead held tens of MiB after a warm-up.
TEST(AttentionForward, Fp32TilePrimitivesStayBoundedOverSequenceLengths) {
  EXPECT_LE(test::primitives_added_over_sequence_lengths({16, 32}), 14u);
}

TEST(AttentionErrors, RejectsBadShapes) {
  const std::vector<int64_t> pos = iota_positions(4, 0);
  std::vector<float> buf(4 * 6 * 4), lse(4 * 6);
  const auto run = [&](AttentionShape s, AttentionBlocks b = {}) {
    attention_forward(buf.data(), lse.data(), buf.data(), buf.data(), buf.data(), pos.data(), pos.data(), s,
                      1.0, b);
  };
  EXPECT_THROW(run({4, 4, 6, 4, 4}), Error);  // 6 heads cannot share 4 KV heads
  EXPECT_THROW(run({4, 4, 6, 0, 4}), Error);
  EXPECT_THROW(run({4, 4, 6, 6, 0}), Error);
  EXPECT_THROW(run({-1, 4, 6, 6, 4}), Error);
  EXPECT_THROW(run({4, 4, 6, 6, 4}, {0, 8}), Error);
  EXPECT_NO_THROW(run({4, 4, 6, 3, 4}));
}

}  // namespace
}  // namespace tsp::kernels

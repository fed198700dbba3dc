// Cross-entropy with the online log-sum-exp over vocabulary shards: shard folding against the whole
// vocabulary, argmax ties, ignore_index, finite-difference gradients and float against double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/cross_entropy.h"

namespace tsp::kernels {
namespace {

using test::rel_error;

// Columns [c0, c0 + cols) of logits[n, v] as their own contiguous [n, cols] shard.
template <class T>
std::vector<T> columns(const std::vector<T>& logits, int64_t n, int64_t v, int64_t c0, int64_t cols) {
  std::vector<T> shard(n * cols);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < cols; ++j) shard[i * cols + j] = logits[i * v + c0 + j];
  return shard;
}

struct Shard {
  int64_t begin, size;
};

struct FoldResult {
  std::vector<double> loss, lse;
  std::vector<int32_t> argmax;
};

// Folds the shards in the order given, as a vocabulary-parallel layout would.
FoldResult fold_shards(const std::vector<double>& logits, const std::vector<int32_t>& targets, int64_t n,
                       int64_t v, const std::vector<Shard>& shards) {
  std::vector<double> run_max(n), run_sum(n), target_logit(n);
  FoldResult r{std::vector<double>(n), std::vector<double>(n), std::vector<int32_t>(n)};
  online_lse_init(run_max.data(), run_sum.data(), target_logit.data(), r.argmax.data(), n);
  for (const Shard& s : shards) {
    const auto part = columns(logits, n, v, s.begin, s.size);
    online_lse_fold(run_max.data(), run_sum.data(), target_logit.data(), r.argmax.data(), part.data(),
                    targets.data(), n, s.begin, s.size);
  }
  online_lse_finish(r.lse.data(), r.loss.data(), run_max.data(), run_sum.data(), target_logit.data(),
                    targets.data(), n, kIgnoreIndex);
  return r;
}

TEST(CrossEntropy, ForwardMatchesLogSoftmax) {
  const int64_t n = 6, v = 17;
  std::mt19937_64 rng(1);
  const auto logits = test::random_vector<double>(n * v, rng, -4, 4);
  const std::vector<int32_t> targets = {0, 16, 5, 5, 9, 2};
  std::vector<double> loss(n), lse(n);
  std::vector<int32_t> argmax(n);
  cross_entropy_forward(loss.data(), lse.data(), argmax.data(), logits.data(), targets.data(), n, v,
                        kIgnoreIndex);
  for (int64_t i = 0; i < n; ++i) {
    long double s = 0;
    int32_t best = 0;
    for (int64_t j = 0; j < v; ++j) {
      s += std::exp((long double)logits[i * v + j]);
      if (logits[i * v + j] > logits[i * v + best]) best = int32_t(j);
    }
    const double ref_lse = double(std::log(s));
    EXPECT_NEAR(lse[i], ref_lse, 1e-14 * std::abs(ref_lse));
    EXPECT_NEAR(loss[i], ref_lse - logits[i * v + targets[i]], 1e-13);
    EXPECT_EQ(argmax[i], best);
  }
}

// exp(1000) overflows in both float and double: only a max-shifted sum gets these right. The tolerances are
// the float spacing at the size of the lse (2^-14 near 1e3, 2^-9 near 3e4).
TEST(CrossEntropy, LargeLogitsAreStable) {
  const std::vector<float> logits = {1000.f, 1000.f, -1000.f, 0.f, -50000.f, 30000.f, 30000.f, 29990.f};
  const std::vector<int32_t> targets = {1, 2};
  std::vector<float> loss(2), lse(2);
  cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                        targets.data(), 2, 4, kIgnoreIndex);
  EXPECT_NEAR(lse[0], 1000.0 + std::log(2.0), 1e-4);
  EXPECT_NEAR(loss[0], std::log(2.0), 1e-4);
  EXPECT_NEAR(lse[1], 30000.0 + std::log(2.0 + std::exp(-10.0)), 4e-3);
  EXPECT_NEAR(loss[1], std::log(2.0 + std::exp(-10.0)), 4e-3);
}

TEST(CrossEntropy, ShardedFoldMatchesWholeVocabulary) {
  const int64_t n = 9, v = 23;
  std::mt19937_64 rng(2);
  const auto logits = test::random_vector<double>(n * v, rng, -6, 6);
  const std::vector<int32_t> targets = {0, 6, 7, 15, 16, 22, kIgnoreIndex, 3, 20};
  std::vector<double> loss(n), lse(n);
  std::vector<int32_t> argmax(n);
  cross_entropy_forward(loss.data(), lse.data(), argmax.data(), logits.data(), targets.data(), n, v,
                        kIgnoreIndex);

  const std::vector<Shard> in_order = {{0, 7}, {7, 9}, {16, 7}};
  const std::vector<Shard> reversed = {{16, 7}, {7, 9}, {0, 7}};
  for (const auto& shards : {in_order, reversed}) {
    const auto r = fold_shards(logits, targets, n, v, shards);
    EXPECT_LE(rel_error(r.lse, lse), 1e-15);
    EXPECT_LE(rel_error(r.loss, loss), 1e-14);
    EXPECT_EQ(r.argmax, argmax);
  }
}

TEST(CrossEntropy, ArgmaxTiesGoToTheLowerColumn) {
  const int64_t n = 2, v = 8;
  // Row 0: the maximum 5 at columns 2 and 6 (different shards); row 1: at columns 4 and 5 (same shard).
  const std::vector<double> logits = {0, 1, 5, 0, 0, 1, 5, 0, /**/ 0, 0, 0, 0, 3, 3, 0, 0};
  const std::vector<int32_t> targets = {0, 0};
  for (const auto& shards :
       {std::vector<Shard>{{0, 4}, {4, 4}}, std::vector<Shard>{{4, 4}, {0, 4}}, std::vector<Shard>{{0, 8}}}) {
    const auto r = fold_shards(logits, targets, n, v, shards);
    EXPECT_EQ(r.argmax, (std::vector<int32_t>{2, 4}));
  }
}

TEST(CrossEntropy, BackwardMatchesFiniteDifferences) {
  const int64_t n = 5, v = 11;
  std::mt19937_64 rng(3);
  auto logits = test::random_vector<double>(n * v, rng, -3, 3);
  const std::vector<int32_t> targets = {4, kIgnoreIndex, 0, 10, 4};
  const double scale = 1.0 / 4;  // mean over the 4 counted rows
  std::vector<double> loss(n), lse(n);
  auto mean_loss = [&] {
    cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                          targets.data(), n, v, kIgnoreIndex);
    double s = 0;
    for (double l : loss) s += l;
    return scale * s;
  };
  const auto num = test::numerical_gradient(mean_loss, logits);
  mean_loss();
  const auto d0 = test::random_vector<double>(n * v, rng);
  auto d = d0;
  cross_entropy_backward(d.data(), logits.data(), lse.data(), targets.data(), n, 0, v, kIgnoreIndex, scale);
  EXPECT_LE(rel_error(test::minus(d, d0), num), 1e-6);
}

TEST(CrossEntropy, ShardedBackwardMatchesOneShot) {
  const int64_t n = 7, v = 19, split = 8;
  std::mt19937_64 rng(4);
  const auto logits = test::random_vector<double>(n * v, rng, -5, 5);
  const std::vector<int32_t> targets = {0, 7, 8, 18, kIgnoreIndex, 12, 3};
  std::vector<double> loss(n), lse(n);
  cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                        targets.data(), n, v, kIgnoreIndex);
  std::vector<double> whole(n * v);
  cross_entropy_backward(whole.data(), logits.data(), lse.data(), targets.data(), n, 0, v, kIgnoreIndex, 0.5);

  // The lse comes from folding the two shards in turn; each shard's gradient then needs only its own logits.
  const auto folded = fold_shards(logits, targets, n, v, {{0, split}, {split, v - split}});
  for (const Shard s : {Shard{0, split}, Shard{split, v - split}}) {
    const auto part = columns(logits, n, v, s.begin, s.size);
    std::vector<double> d(n * s.size);
    cross_entropy_backward(d.data(), part.data(), folded.lse.data(), targets.data(), n, s.begin, s.size,
                           kIgnoreIndex, 0.5);
    EXPECT_LE(rel_error(d, columns(whole, n, v, s.begin, s.size)), 1e-15) << "shard at " << s.begin;
  }
}

TEST(CrossEntropy, IgnoredRowsGiveNoLossAndNoGradient) {
  const int64_t n = 4, v = 6;
  std::mt19937_64 rng(5);
  const auto logits = test::random_vector<double>(n * v, rng, -2, 2);
  const std::vector<int32_t> targets = {kIgnoreIndex, 3, kIgnoreIndex, 5};
  std::vector<double> loss(n, 7.0), lse(n);
  cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                        targets.data(), n, v, kIgnoreIndex);
  EXPECT_EQ(loss[0], 0.0);
  EXPECT_EQ(loss[2], 0.0);
  EXPECT_GT(loss[1], 0.0);
  EXPECT_TRUE(std::isfinite(lse[0]));

  const auto d0 = test::random_vector<double>(n * v, rng);
  auto d = d0;
  cross_entropy_backward(d.data(), logits.data(), lse.data(), targets.data(), n, 0, v, kIgnoreIndex, 1.0);
  for (int64_t j = 0; j < v; ++j) {
    EXPECT_EQ(d[0 * v + j], d0[0 * v + j]);
    EXPECT_EQ(d[2 * v + j], d0[2 * v + j]);
  }
  // Counted rows: softmax minus one-hot sums to zero.
  for (int64_t i : {1, 3}) {
    double s = 0;
    for (int64_t j = 0; j < v; ++j) s += d[i * v + j] - d0[i * v + j];
    EXPECT_NEAR(s, 0.0, 1e-15);
  }

  // A different ignore_index value is honoured by both finish and backward.
  const std::vector<int32_t> pad_targets = {0, 3, 0, 5};
  cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                        pad_targets.data(), n, v, /*ignore_index=*/0);
  EXPECT_EQ(loss[0], 0.0);
  EXPECT_GT(loss[1], 0.0);
}

TEST(CrossEntropy, FloatMatchesDouble) {
  const int64_t n = 12, v = 300;
  std::mt19937_64 rng(6);
  const auto logits = test::random_vector<double>(n * v, rng, -8, 8);
  std::vector<int32_t> targets(n);
  for (auto& t : targets) t = int32_t(rng() % v);
  targets[3] = kIgnoreIndex;
  const auto logitsf = test::convert<float>(logits);
  std::vector<double> loss(n), lse(n), d(n * v);
  std::vector<float> lossf(n), lsef(n), df(n * v);
  std::vector<int32_t> argmax(n), argmaxf(n);
  cross_entropy_forward(loss.data(), lse.data(), argmax.data(), logits.data(), targets.data(), n, v,
                        kIgnoreIndex);
  cross_entropy_forward(lossf.data(), lsef.data(), argmaxf.data(), logitsf.data(), targets.data(), n, v,
                        kIgnoreIndex);
  cross_entropy_backward(d.data(), logits.data(), lse.data(), targets.data(), n, 0, v, kIgnoreIndex,
                         1.0 / 11);
  cross_entropy_backward(df.data(), logitsf.data(), lsef.data(), targets.data(), n, 0, v, kIgnoreIndex,
                         1.f / 11);
  EXPECT_LE(rel_error(lossf, loss), 1e-5);
  EXPECT_LE(rel_error(lsef, lse), 1e-6);
  EXPECT_LE(rel_error(df, d), 1e-5);
  EXPECT_EQ(argmaxf, argmax);
}

// Above the OpenMP threshold (n * v > 2^16) rows are split across threads.
TEST(CrossEntropy, LargeVocabularyMatchesRowByRow) {
  const int64_t n = 16, v = 5000;
  std::mt19937_64 rng(7);
  const auto logits = test::random_vector<float>(n * v, rng, -10, 10);
  std::vector<int32_t> targets(n);
  for (auto& t : targets) t = int32_t(rng() % v);
  std::vector<float> loss(n), lse(n), loss1(n), lse1(n), d(n * v), d1(n * v);
  std::vector<int32_t> argmax(n), argmax1(n);
  cross_entropy_forward(loss.data(), lse.data(), argmax.data(), logits.data(), targets.data(), n, v,
                        kIgnoreIndex);
  cross_entropy_backward(d.data(), logits.data(), lse.data(), targets.data(), n, 0, v, kIgnoreIndex, 1.f);
  for (int64_t i = 0; i < n; ++i) {
    cross_entropy_forward(&loss1[i], &lse1[i], &argmax1[i], &logits[i * v], &targets[i], 1, v, kIgnoreIndex);
    cross_entropy_backward(&d1[i * v], &logits[i * v], &lse1[i], &targets[i], 1, 0, v, kIgnoreIndex, 1.f);
  }
  EXPECT_EQ(loss, loss1);
  EXPECT_EQ(argmax, argmax1);
  EXPECT_EQ(d, d1);
}

TEST(CrossEntropy, RejectsTargetOutsideVocabulary) {
  const std::vector<double> logits(4);
  const std::vector<int32_t> targets = {4};
  std::vector<double> loss(1), lse(1);
  EXPECT_THROW(cross_entropy_forward(loss.data(), lse.data(), static_cast<int32_t*>(nullptr), logits.data(),
                                     targets.data(), 1, 4, kIgnoreIndex),
               tsp::Error);
}

}  // namespace
}  // namespace tsp::kernels

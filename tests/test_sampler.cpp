// The sampler on whole-vocabulary logits (one rank): greedy is the first argmax; sampling draws from
// softmax(logits / T) restricted to what HF's TopK and TopP warpers keep (checked against a direct
// transcription of the warpers), with frequencies matching the filtered softmax; the same seed gives the
// same tokens and the noise depends only on (seed, sequence, step, token).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <vector>

#include "core/check.h"
#include "infer/sampler.h"

namespace tsp {
namespace {

const std::vector<double> kLogits = {1.0, 3.0, 2.5, -1.0, 3.0, 0.5, 2.0, -4.0, 1.5, 2.9};

int32_t pick(const std::vector<double>& logits, const SamplingParams& sp, uint64_t seq, uint64_t step) {
  int32_t out = -1;
  const VocabShard whole{0, int64_t(logits.size()), nullptr, int64_t(logits.size())};
  pick_tokens(logits.data(), 1, whole, sp, {Draw{seq, step}}, &out);
  return out;
}

// HF's warpers, transcribed: TemperatureLogitsWarper, TopKLogitsWarper (keeps scores >= the k-th largest),
// TopPLogitsWarper (ascending sort, removes tokens whose cumulative probability <= 1 - top_p, keeps the
// last; HF leaves the order of equal scores to torch.sort, our sampler counts the lower id as the more
// likely); returns the kept tokens' probabilities (0 for removed ones).
std::vector<double> hf_filtered_probs(const std::vector<double>& logits, const SamplingParams& sp) {
  const size_t V = logits.size();
  std::vector<double> z(V);
  for (size_t j = 0; j < V; ++j) z[j] = logits[j] / sp.temperature;
  if (sp.top_k > 0 && size_t(sp.top_k) < V) {
    std::vector<double> s = z;
    std::sort(s.begin(), s.end(), std::greater<double>());
    const double kth = s[size_t(sp.top_k - 1)];
    for (double& x : z)
      if (x < kth) x = -INFINITY;
  }
  auto softmax = [](const std::vector<double>& v) {
    const double m = *std::max_element(v.begin(), v.end());
    std::vector<double> p(v.size());
    double s = 0;
    for (size_t j = 0; j < v.size(); ++j) s += p[j] = std::exp(v[j] - m);
    for (double& x : p) x /= s;
    return p;
  };
  if (sp.top_p < 1) {
    std::vector<size_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return z[a] < z[b] || (z[a] == z[b] && a > b); });
    const std::vector<double> p = softmax(z);
    double cum = 0;
    for (size_t r = 0; r + 1 < V; ++r) {
      cum += p[order[r]];
      if (cum <= 1 - sp.top_p) z[order[r]] = -INFINITY;
    }
  }
  return softmax(z);
}

TEST(Sampler, GreedyIsTheFirstArgmax) {
  SamplingParams sp;
  EXPECT_EQ(pick(kLogits, sp, 0, 0), 1);  // 3.0 at ids 1 and 4: the lower id
}

TEST(Sampler, SameSeedSameTokensAndNoiseIsAFunctionOfItsKey) {
  SamplingParams sp{0.7, 5, 0.9, 42};
  for (uint64_t step = 0; step < 20; ++step)
    EXPECT_EQ(pick(kLogits, sp, 3, step), pick(kLogits, sp, 3, step));
  EXPECT_EQ(gumbel_noise(1, 2, 3, 4), gumbel_noise(1, 2, 3, 4));
  EXPECT_NE(gumbel_noise(1, 2, 3, 4), gumbel_noise(1, 2, 3, 5));
  EXPECT_NE(gumbel_noise(1, 2, 3, 4), gumbel_noise(2, 2, 3, 4));
}

// Draws over many steps follow the HF-filtered distribution: only kept tokens appear, and each token's
// frequency is within 5 standard errors of its probability (deterministic: the noise is counter-based).
TEST(Sampler, FrequenciesFollowTheFilteredSoftmax) {
  const std::vector<SamplingParams> cases = {{1.0, 0, 1.0, 1}, {0.5, 0, 1.0, 2}, {1.0, 4, 1.0, 3},
                                             {1.0, 0, 0.8, 4}, {1.3, 6, 0.7, 5}, {1.0, 0, 0.05, 6}};
  const int draws = 20000;
  for (const SamplingParams& sp : cases) {
    const std::vector<double> want = hf_filtered_probs(kLogits, sp);
    std::vector<int> count(kLogits.size(), 0);
    for (int t = 0; t < draws; ++t) ++count[size_t(pick(kLogits, sp, 11, uint64_t(t)))];
    for (size_t j = 0; j < kLogits.size(); ++j) {
      const double f = double(count[j]) / draws, p = want[j];
      if (p == 0) {
        EXPECT_EQ(count[j], 0) << "token " << j << " is filtered out (T " << sp.temperature << " k "
                               << sp.top_k << " p " << sp.top_p << ")";
      } else {
        const double se = std::sqrt(p * (1 - p) / draws);
        EXPECT_NEAR(f, p, 5 * se + 1e-12)
            << "token " << j << " (T " << sp.temperature << " k " << sp.top_k << " p " << sp.top_p << ")";
      }
    }
  }
}

TEST(Sampler, RejectsBadParameters) {
  EXPECT_THROW((SamplingParams{-1, 0, 1, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingParams{1, -2, 1, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingParams{1, 0, 0, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingParams{1, 0, 1.5, 0}.validate()), UsageError);
  EXPECT_THROW((SamplingParams{0, 5, 1, 0}.validate()), UsageError);  // top-k without sampling
  EXPECT_NO_THROW((SamplingParams{0.8, 5, 0.9, 0}.validate()));
}

}  // namespace
}  // namespace tsp

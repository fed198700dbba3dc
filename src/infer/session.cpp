#include "infer/session.h"

#include <cmath>

#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "model/checkpoint.h"

namespace tsp {

InferenceSession::InferenceSession(const std::string& dir, const std::string& strategy, Communicator& world,
                                   const StrategyOptions& layout) {
  TSP_REQUIRE(layout.dp == 1,
              "--dp {}: eval and generate run one sequence on one model replica (data parallelism is for "
              "training)",
              layout.dp);
  ModelConfig c = checkpoint_config(dir);
  strategy_ = make_strategy<float>(strategy, world, layout);
  params_ = std::make_unique<ModelParams<float>>(c, strategy_->shard_spec(c), /*with_grads=*/false);
  load_checkpoint<float>(dir, *params_, nullptr, nullptr);
  model_ = std::make_unique<Transformer<float>>(*params_, *strategy_);
}

int64_t InferenceSession::padded_len(int64_t n) const {
  const int64_t m = strategy_->seq_len_multiple();
  return (n + m - 1) / m * m;
}

void InferenceSession::check_tokens(const std::vector<int32_t>& tokens) const {
  const ModelConfig& c = config();
  TSP_REQUIRE(!tokens.empty(), "an empty token sequence has nothing to evaluate");
  TSP_REQUIRE(padded_len(int64_t(tokens.size())) <= c.max_position_embeddings,
              "a sequence of {} tokens (padded to {}) exceeds max_position_embeddings {}", tokens.size(),
              padded_len(int64_t(tokens.size())), c.max_position_embeddings);
  for (size_t i = 0; i < tokens.size(); ++i)
    TSP_REQUIRE(tokens[i] >= 0 && tokens[i] < c.vocab_size,
                "token {} (at index {}) is outside the vocabulary [0, {})", tokens[i], i, c.vocab_size);
}

std::vector<float> InferenceSession::logits(const std::vector<int32_t>& tokens) {
  check_tokens(tokens);
  const int64_t n = int64_t(tokens.size()), S = padded_len(n), V = config().vocab_size;
  std::vector<int32_t> padded(tokens);
  padded.resize(size_t(S), 0);
  std::vector<float> all = model_->logits(padded.data(), 1, S);
  all.resize(size_t(n * V));
  return all;
}

std::pair<double, int64_t> InferenceSession::loss(const std::vector<int32_t>& tokens) {
  check_tokens(tokens);
  const int64_t n = int64_t(tokens.size()), S = padded_len(n);
  std::vector<int32_t> padded(tokens), targets(size_t(S), kernels::kIgnoreIndex);
  padded.resize(size_t(S), 0);
  for (int64_t i = 0; i + 1 < n; ++i) targets[size_t(i)] = tokens[size_t(i + 1)];
  StepResult r = model_->forward(padded.data(), targets.data(), 1, S);
  return {r.loss * double(r.targets), r.targets};
}

std::vector<int32_t> InferenceSession::generate(std::vector<int32_t> tokens, int64_t max_new,
                                                double temperature, uint64_t seed) {
  TSP_REQUIRE(max_new >= 0, "--max-new-tokens must be >= 0, got {}", max_new);
  TSP_REQUIRE(temperature >= 0, "--temperature must be >= 0, got {}", temperature);
  std::mt19937_64 rng(seed);
  const int64_t V = config().vocab_size;
  for (int64_t step = 0; step < max_new; ++step) {
    if (padded_len(int64_t(tokens.size()) + 1) > config().max_position_embeddings) break;
    // The whole sequence is run again for each new token (no KV cache yet): the prefill-shaped pass is the
    // one every layout implements, and it gives exactly the single-device answer.
    std::vector<float> lg = logits(tokens);
    const float* last = lg.data() + (int64_t(tokens.size()) - 1) * V;
    int32_t next = 0;
    if (temperature == 0) {
      for (int64_t j = 1; j < V; ++j)
        if (last[j] > last[next]) next = int32_t(j);
    } else {
      std::vector<double> w(static_cast<size_t>(V));
      double mx = last[0];
      for (int64_t j = 1; j < V; ++j) mx = std::max(mx, double(last[j]));
      for (int64_t j = 0; j < V; ++j) w[size_t(j)] = std::exp((double(last[j]) - mx) / temperature);
      std::discrete_distribution<int32_t> pick(w.begin(), w.end());
      next = pick(rng);
    }
    tokens.push_back(next);
  }
  return tokens;
}

}  // namespace tsp

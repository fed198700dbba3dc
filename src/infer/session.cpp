#include "infer/session.h"

#include <chrono>
#include <cmath>

#include "core/check.h"
#include "infer/generation_config.h"
#include "kernels/cross_entropy.h"
#include "model/checkpoint.h"
#include "train/checkpoint_manager.h"

namespace tsp {

InferenceSession::InferenceSession(const std::string& dir, const std::string& strategy, Communicator& world,
                                   const StrategyOptions& layout, const DecodeOptions& decode)
    : decode_(decode) {
  TSP_REQUIRE(layout.dp == 1,
              "--dp {}: eval and generate run one model replica (a batch of prompts shares it; data "
              "parallelism is for training)",
              layout.dp);
  dir_ = resolve_checkpoint_dir(dir);
  // A checkpoint written by tsp train is verified against its manifest (an HF directory has none).
  const std::string problem = checkpoint_problem(dir_, &world, /*require_manifest=*/false);
  TSP_REQUIRE(problem.empty(), "--checkpoint {}: {}", dir, problem);
  ModelConfig c = checkpoint_config(dir_);
  eos_ = eos_token_ids(dir_);
  strategy_ = make_strategy<float>(strategy, world, layout);
  params_ = std::make_unique<ModelParams<float>>(c, strategy_->shard_spec(c), /*with_grads=*/false);
  // The decoder is made (not yet allocated) before the weights are read, so that options the layout cannot
  // serve with fail first.
  generator_ = std::make_unique<Generator<float>>(*params_, *strategy_, decode_);
  load_checkpoint<float>(dir_, *params_, nullptr, nullptr);
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

std::vector<GeneratedSequence> InferenceSession::generate(const std::vector<std::vector<int32_t>>& prompts,
                                                          const GenerateOptions& o, bool kv_cache) {
  if (!kv_cache) return generate_without_cache(prompts, o);
  std::vector<GeneratedSequence> out = generator_->generate(prompts, o);
  stats_ = generator_->stats();
  return out;
}

std::vector<GeneratedSequence> InferenceSession::generate_without_cache(
    const std::vector<std::vector<int32_t>>& prompts, const GenerateOptions& o) {
  const ModelConfig& c = config();
  validate_requests(c, prompts, o);
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  stats_ = GenerateStats{};
  std::vector<GeneratedSequence> out(prompts.size());
  std::vector<size_t> active;
  for (size_t b = 0; b < prompts.size(); ++b) {
    out[b].prompt = prompts[b];
    active.push_back(b);
  }
  const VocabShard whole{0, c.vocab_size, nullptr, c.vocab_size};
  auto t_step = t0;
  for (int64_t step = 0; !active.empty(); ++step) {
    std::vector<size_t> still;
    for (size_t b : active) {
      // The whole sequence again for every new token: the prefill-shaped pass every layout implements.
      std::vector<int32_t> seq = out[b].prompt;
      seq.insert(seq.end(), out[b].tokens.begin(), out[b].tokens.end());
      const std::vector<float> lg = logits(seq);
      int32_t next = 0;
      pick_tokens(lg.data() + (int64_t(seq.size()) - 1) * c.vocab_size, 1, whole, o.sampling,
                  {Draw{uint64_t(b), uint64_t(out[b].tokens.size())}}, &next);
      out[b].tokens.push_back(next);
      if (!finished(out[b], o, c.max_position_embeddings)) still.push_back(b);
    }
    active = std::move(still);
    const auto now = clock::now();
    const double dt = std::chrono::duration<double>(now - t_step).count();
    t_step = now;
    if (step == 0) {
      stats_.prefill_seconds = dt;
    } else {
      stats_.step_seconds.push_back(dt);
      stats_.decode_seconds += dt;
      ++stats_.decode_steps;
    }
  }
  for (const GeneratedSequence& g : out) stats_.output_tokens += int64_t(g.tokens.size());
  return out;
}

}  // namespace tsp

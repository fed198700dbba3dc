// A checkpoint loaded under a parallel layout, ready for inference: eval (losses and logits of whole
// sequences, the training forward) and generation — with the KV cache (prefill + batched decode, the default:
// infer/generator.h) or, as a measured baseline, by re-running the whole growing sequence for every new
// token (no cache). Eval pads a sequence at the END to the layout's length multiple (2D for TSP's zigzag);
// causal attention keeps the padding from changing the real tokens' logits, returned in original order.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "infer/generator.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"

namespace tsp {

class InferenceSession {
 public:
  InferenceSession(const std::string& checkpoint_dir, const std::string& strategy, Communicator& world,
                   const StrategyOptions& layout = {}, const DecodeOptions& decode = {});

  const ModelConfig& config() const { return params_->config(); }
  // The checkpoint directory actually read (after following `latest`).
  const std::string& model_dir() const { return dir_; }
  // eos_token_id of the checkpoint's generation_config.json / config.json (infer/generation_config.h).
  const std::vector<int32_t>& eos_tokens() const { return eos_; }

  // Logits [tokens.size(), vocab_size], original token order, on every rank.
  std::vector<float> logits(const std::vector<int32_t>& tokens);
  // Sum of the next-token losses over the sequence and the number of predicted tokens (size - 1).
  std::pair<double, int64_t> loss(const std::vector<int32_t>& tokens);

  // Continues every prompt (one batch); the same result on every rank. kv_cache = false re-runs each
  // sequence in full for every new token (same tokens, the baseline of docs/inference.md).
  std::vector<GeneratedSequence> generate(const std::vector<std::vector<int32_t>>& prompts,
                                          const GenerateOptions& o, bool kv_cache = true);
  const GenerateStats& stats() const { return stats_; }
  Strategy<float>& strategy() { return *strategy_; }
  // --blocked-weights (Generator::blocked_weights).
  void set_blocked_weights(bool on) { generator_->blocked_weights = on; }

 private:
  std::vector<GeneratedSequence> generate_without_cache(const std::vector<std::vector<int32_t>>& prompts,
                                                        const GenerateOptions& o);
  int64_t padded_len(int64_t n) const;
  void check_tokens(const std::vector<int32_t>& tokens) const;
  std::string dir_;
  std::vector<int32_t> eos_;
  DecodeOptions decode_;
  std::unique_ptr<Strategy<float>> strategy_;
  std::unique_ptr<ModelParams<float>> params_;
  std::unique_ptr<Transformer<float>> model_;
  std::unique_ptr<Generator<float>> generator_;
  GenerateStats stats_;
};

}  // namespace tsp

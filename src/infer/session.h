// A checkpoint loaded under a parallel layout, ready for forward passes on single sequences (eval, generate).
// Sequences are padded at the END to the layout's length multiple (2D for TSP's zigzag); causal attention
// means the padding never changes the logits of the real tokens, which are returned in original order.
#pragma once

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"

namespace tsp {

class InferenceSession {
 public:
  InferenceSession(const std::string& checkpoint_dir, const std::string& strategy, Communicator& world,
                   const StrategyOptions& layout = {});

  const ModelConfig& config() const { return params_->config(); }
  // Logits [tokens.size(), vocab_size], original token order, on every rank.
  std::vector<float> logits(const std::vector<int32_t>& tokens);
  // Sum of the next-token losses over the sequence and the number of predicted tokens (size - 1).
  std::pair<double, int64_t> loss(const std::vector<int32_t>& tokens);

  // Appends up to max_new tokens: greedy at temperature 0, else sampling from softmax(logits / T) with a
  // generator seeded by `seed` (identical on every rank, since every rank sees the same logits).
  std::vector<int32_t> generate(std::vector<int32_t> tokens, int64_t max_new, double temperature,
                                uint64_t seed);

 private:
  int64_t padded_len(int64_t n) const;
  void check_tokens(const std::vector<int32_t>& tokens) const;
  std::unique_ptr<Strategy<float>> strategy_;
  std::unique_ptr<ModelParams<float>> params_;
  std::unique_ptr<Transformer<float>> model_;
};

}  // namespace tsp

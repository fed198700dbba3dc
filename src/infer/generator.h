// Serving a batch of prompts with a KV cache (docs/inference.md): the prefill of every prompt at once, then
// one decode step per new token for every unfinished sequence. The loop — embedding, each layer's norms and
// residual adds, the final norm, picking the next token — is written here once; the layout supplies the
// blocks through its Decoder (parallel/decode.h), so every layout runs the same loop.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "infer/sampler.h"
#include "model/params.h"
#include "parallel/strategy.h"

namespace tsp {

struct GenerateOptions {
  int64_t max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<int32_t> stop_tokens;  // a sequence ends when it generates one of these (kept in its tokens)
};

struct GeneratedSequence {
  std::vector<int32_t> prompt, tokens;
  // "eos": a stop token; "length": max_new_tokens; "length_limit": max_position_embeddings reached first.
  std::string finish_reason;
};

struct GenerateStats {
  double prefill_seconds = 0;  // prefill and the first token of every sequence (time to first token)
  double decode_seconds = 0;   // every decode step after it
  int64_t decode_steps = 0;
  std::vector<double> step_seconds;  // each decode step
  int64_t output_tokens = 0;         // over all sequences, the first tokens included
  int64_t kv_cache_bytes = 0;        // this rank
  int64_t context = 0;               // positions each sequence can reach in the cache
  int64_t frozen_bf16_bytes = 0;     // this rank's bf16 copy of its weights at rest (bf16 products), or 0
  int64_t blocked_bf16_bytes = 0;    // this rank's blocked copies of them (blocked_weights), or 0
  int64_t blocked_bf16_weights = 0;  // how many matrices have one
};

// Checks a batch of prompts against the model (non-empty, ids in the vocabulary, room below
// max_position_embeddings) and the options; UsageError naming the prompt and the value.
void validate_requests(const ModelConfig& c, const std::vector<std::vector<int32_t>>& prompts,
                       const GenerateOptions& o);
// Sets g.finish_reason when g's latest token ends it (a stop token, max_new_tokens, or the model's
// max_position_embeddings); true when it did.
bool finished(GeneratedSequence& g, const GenerateOptions& o, int64_t max_position_embeddings);

template <class T>
class Generator {
 public:
  Generator(ModelParams<T>& params, Strategy<T>& strategy, const DecodeOptions& opts);

  // Runs on every rank of the strategy's replica with the same arguments; returns the same on every rank.
  // Throws UsageError for an empty prompt, a token outside the vocabulary or a prompt with no room left
  // below max_position_embeddings.
  std::vector<GeneratedSequence> generate(const std::vector<std::vector<int32_t>>& prompts,
                                          const GenerateOptions& o);
  const GenerateStats& stats() const { return stats_; }
  Decoder<T>& decoder() { return *decoder_; }

  // Test hook: sees every pick's logits (this rank's vocabulary shard, [batch.size(), shard.rows]) and the
  // rows they belong to; batch.pos is the position whose next token the logits predict.
  std::function<void(const DecodeBatch& batch, const T* logits, const VocabShard& shard)> on_logits;
  // Under --matmul-precision bf16, round the weights to bf16 once per generation rather than in every
  // product (kernels/frozen_weights.h; the same tokens and logits). Off: the per-call rounding (tests, the
  // baseline of docs/performance.md).
  bool freeze_bf16_weights = true;
  // With bf16 products and weights at rest (frozen, or the bf16 policy's): also keep the matrices where it
  // pays in oneDNN's blocked layout for the generation (kernels/blocked_weights.h; --blocked-weights).
  bool blocked_weights = false;

 private:
  // logits: scratch [batch, vocabulary shard rows].
  void pick(const DecodeBatch& batch, const T* u, const GenerateOptions& o,
            const std::vector<GeneratedSequence>& out, T* logits, int32_t* next);

  ModelParams<T>& p_;
  Strategy<T>& s_;
  std::unique_ptr<Decoder<T>> decoder_;
  GenerateStats stats_;
};

}  // namespace tsp

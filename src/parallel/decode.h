// The inference seam of a layout (docs/inference.md): a Decoder is created by a Strategy
// (Strategy::make_decoder), owns the layout's KV cache, and supplies the blocks of the two inference phases.
// The loop around them — embedding, the norms and residual adds of every layer, the final norm, picking the
// next token — is written once for every layout (infer/generator.h), as the training forward is.
//
//   prefill: the layout's forward schedule (for TSP: broadcast shards, K/V all-gather, zigzag tokens) on a
//            batch of prompts padded at the end to one length S, writing the KV cache. Nothing is saved for a
//            backward. Causality keeps the padding away from every real token.
//   decode:  one new token per active sequence, each at its own position. x [n, h] is replicated on every
//            rank; no layout moves weights: per layer a rank exchanges O(n·h) elements (partial sums of the
//            residual stream, queries, partial attention outputs with their log-sum-exp), under decode.*
//            labels.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "parallel/kv_cache.h"

namespace tsp {

struct DecodeOptions {
  KvLayout kv_layout = KvLayout::heads;  // tsp: where the cache lives (kv_cache.h)
  bool kv_layout_given = false;          // --kv-layout was given (refused by layouts with one placement)
};

// The requests being served: `batch` sequences, the prompt padded to `prompt` (a multiple of
// Decoder::prompt_multiple()) and room for `needed` positions per sequence.
struct ServeShape {
  int64_t batch = 0;
  int64_t prompt = 0;
  int64_t needed = 0;
};

// The sequences advanced by one decode step: batch indices (increasing) and the position of each one's new
// token.
struct DecodeBatch {
  std::vector<int64_t> seq, pos;
  int64_t size() const { return int64_t(seq.size()); }
};

// The vocabulary rows whose logits a rank computes in decode: [begin, begin + rows) of the vocabulary. The
// ranks of `comm` hold different rows (null or size 1: this rank has them all); a sampler merges over it.
struct VocabShard {
  int64_t begin = 0, rows = 0;
  Communicator* comm = nullptr;
  int64_t vocab = 0;  // the whole vocabulary
};

template <class T>
class Decoder {
 public:
  virtual ~Decoder() = default;

  // How the KV cache is laid out, e.g. "heads 1/2 (KV heads 0-1 of 4), every position".
  virtual std::string kv_placement() const = 0;
  virtual KvLayout kv_layout() const = 0;
  // The padded prompt length must be a multiple of this.
  virtual int64_t prompt_multiple() const = 0;
  // Allocates the KV cache and every buffer of both phases for `s` (freeing any previous allocation first).
  virtual void allocate(const ServeShape& s) = 0;
  // Bytes of this rank's KV cache (Mem::kv_cache) and the positions each sequence can reach.
  virtual int64_t kv_cache_bytes() const = 0;
  virtual int64_t context() const = 0;
  // Positions of sequence b cached on this rank below `len` (the balance of the positions placement).
  virtual int64_t cached_positions(int64_t b, int64_t len) const = 0;

  // --- prefill, on this rank's tokens of the padded batch: [n, h], n = batch x prefill_positions() ---
  // Global positions within a sequence of this rank's prefill tokens, in storage order.
  virtual std::vector<int64_t> prefill_positions() const = 0;
  virtual void prefill_embed(const int32_t* tokens, T* x) = 0;
  virtual void prefill_attention(int layer, const T* u, T* y) = 0;
  virtual void prefill_mlp(int layer, const T* u, T* y) = 0;
  // rows[b] = u of the token at position last[b] of sequence b (the final norm's output), on every rank.
  virtual void prefill_rows(const T* u, const int64_t* last, T* rows) = 0;

  // --- decode, on replicated rows [n, h], n = the batch of the last begin_step ---
  virtual void begin_step(const DecodeBatch& batch) = 0;
  virtual void decode_embed(const int32_t* tokens, T* x) = 0;
  virtual void decode_attention(int layer, const T* u, T* y) = 0;
  virtual void decode_mlp(int layer, const T* u, T* y) = 0;
  // logits[n, shard.rows] of this rank's vocabulary shard.
  virtual VocabShard vocab_shard() = 0;
  virtual void decode_logits(const T* u, T* logits) = 0;
};

}  // namespace tsp

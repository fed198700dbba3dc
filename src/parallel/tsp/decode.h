// TSP inference (tsp-spec.md §12, docs/inference.md). Prefill runs TSP's training forward schedule in
// inference mode — attention shards broadcast by their owners, K/V all-gathered across the zigzag token
// layout, the MLP and vocabulary weight rings — and writes the KV cache. Decode keeps the weights where TSP
// placed them (head group p, intermediate shard p, vocabulary shard p): moving (D-1)/D of every matrix per
// token would cost far more than moving activations.
//   --kv-layout heads (default): rank p keeps, from the prefill's all-gather of head group p, every
//     position's keys and values of its own head group; decode is then Megatron TP on those shards
//     (decode_blocks.h): two all-reduces of n·h per layer.
//   --kv-layout sequence: rank p keeps its own (zigzag) tokens' keys and values of every head; new tokens go
//     to the ranks in round-robin blocks; decode attends KV-parallel (decode_sequence.h).
// Both hold exactly 1/D of the cache per rank.
#pragma once

#include <string>

#include "parallel/decode.h"
#include "parallel/decode_blocks.h"
#include "parallel/tsp/attention.h"
#include "parallel/tsp/decode_sequence.h"
#include "parallel/tsp/mlp_ring.h"
#include "parallel/tsp/ring.h"
#include "parallel/tsp/vocab_ring.h"

namespace tsp {

template <class T>
class TspDecode : public Decoder<T> {
 public:
  // bf16_wire: the prefill's weight shards travel as bf16 (TspOptions::weight_comm_bf16).
  TspDecode(ModelParams<T>& p, Communicator& comm, KvLayout kv_layout, bool bf16_wire = false);
  TspDecode(const TspDecode&) = delete;
  TspDecode& operator=(const TspDecode&) = delete;

  std::string kv_placement() const override;
  KvLayout kv_layout() const override { return kv_layout_; }
  int64_t prompt_multiple() const override { return 2 * int64_t(comm_.size()); }
  void allocate(const ServeShape& s) override;
  int64_t kv_cache_bytes() const override { return cache_.bytes(); }
  int64_t context() const override { return slots_.context; }
  int64_t cached_positions(int64_t b, int64_t len) const override { return slots_.count(b, len); }

  std::vector<int64_t> prefill_positions() const override { return layout_.seq_positions; }
  void prefill_embed(const int32_t* tokens, T* x) override { vocab_.embed_forward(p_, tokens, x); }
  void prefill_attention(int layer, const T* u, T* y) override { attn_.forward(p_, layer, u, y); }
  void prefill_mlp(int layer, const T* u, T* y) override { mlp_.forward(p_, layer, u, y); }
  void prefill_rows(const T* u, const int64_t* last, T* rows) override;

  void begin_step(const DecodeBatch& batch) override;
  void decode_embed(const int32_t* tokens, T* x) override { dvocab_.embed(p_, tokens, batch_->size(), x); }
  void decode_attention(int layer, const T* u, T* y) override;
  void decode_mlp(int layer, const T* u, T* y) override { dmlp_.forward(p_, layer, u, batch_->size(), y); }
  VocabShard vocab_shard() override { return dvocab_.shard(); }
  void decode_logits(const T* u, T* logits) override { dvocab_.logits(p_, u, batch_->size(), logits); }

 private:
  ModelParams<T>& p_;
  Communicator& comm_;
  KvLayout kv_layout_;
  bool bf16_wire_ = false;
  // Prefill: TSP's training blocks in inference mode.
  TspLayout layout_;
  TspAttention<T> attn_;
  TspMlpRing<T> mlp_;
  TspVocabRing<T> vocab_;
  // The cache and the decode blocks.
  KvSlots slots_;
  KvCache<T> cache_;
  const DecodeBatch* batch_ = nullptr;
  DecodeVocab<T> dvocab_;
  DecodeMlp<T> dmlp_;
  DecodeAttention<T> dattn_;          // heads
  TspSequenceAttention<T> seq_attn_;  // sequence
};

}  // namespace tsp

// Inference on the TP×SP mesh (docs/inference.md), also serving the single-device layout (T = Σ = 1, no
// communicators). Prefill runs the mesh's training forward in inference mode (TP all-reduces, or
// Megatron-SP's gathers; the SP K/V all-gather over zigzag tokens) and writes the KV cache: TP rank t caches
// its head group, SP rank s its SP group's positions (kv_cache.h: heads over T, positions over Σ). Decode is
// Megatron TP on the same shards, with the attention of an SP-split cache merged by log-sum-exp across SP
// (decode_blocks.h).
#pragma once

#include <string>

#include "parallel/decode.h"
#include "parallel/decode_blocks.h"
#include "parallel/tpsp/mesh_attention.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/tpsp/mesh_mlp.h"
#include "parallel/tpsp/mesh_vocab.h"
#include "parallel/tpsp/tp_tokens.h"

namespace tsp {

// The mesh a decoder runs on: communicators may be null where an axis has one rank (all null for single).
struct DecodeMesh {
  Communicator *mesh = nullptr, *tp = nullptr, *sp = nullptr;
  int tp_size = 1, tp_rank = 0, sp_size = 1, sp_rank = 0;
  bool seq_parallel = false;  // Megatron-SP in the prefill
};

template <class T>
class MeshDecode : public Decoder<T> {
 public:
  MeshDecode(ModelParams<T>& p, DecodeMesh mesh);
  MeshDecode(const MeshDecode&) = delete;
  MeshDecode& operator=(const MeshDecode&) = delete;

  std::string kv_placement() const override;
  KvLayout kv_layout() const override { return m_.sp_size > 1 ? KvLayout::sequence : KvLayout::heads; }
  int64_t prompt_multiple() const override;
  void allocate(const ServeShape& s) override;
  int64_t kv_cache_bytes() const override { return cache_.bytes(); }
  int64_t context() const override { return slots_.context; }
  int64_t cached_positions(int64_t b, int64_t len) const override { return slots_.count(b, len); }

  std::vector<int64_t> prefill_positions() const override;
  void prefill_embed(const int32_t* tokens, T* x) override { vocab_.embed_forward(p_, tokens, x); }
  void prefill_attention(int layer, const T* u, T* y) override { attn_.forward(p_, layer, u, y); }
  void prefill_mlp(int layer, const T* u, T* y) override { mlp_.forward(p_, layer, u, y); }
  void prefill_rows(const T* u, const int64_t* last, T* rows) override;

  void begin_step(const DecodeBatch& batch) override {
    batch_ = &batch;
    dattn_.begin_step(batch);
  }
  void decode_embed(const int32_t* tokens, T* x) override { dvocab_.embed(p_, tokens, batch_->size(), x); }
  void decode_attention(int layer, const T* u, T* y) override { dattn_.forward(p_, layer, u, y); }
  void decode_mlp(int layer, const T* u, T* y) override { dmlp_.forward(p_, layer, u, batch_->size(), y); }
  VocabShard vocab_shard() override { return dvocab_.shard(); }
  void decode_logits(const T* u, T* logits) override { dvocab_.logits(p_, u, batch_->size(), logits); }

 private:
  ModelParams<T>& p_;
  DecodeMesh m_;
  // Prefill: the mesh's training blocks in inference mode.
  MeshLayout layout_;
  TpTokens<T> tokens_;
  MeshAttention<T> attn_;
  MeshMlp<T> mlp_;
  MeshVocab<T> vocab_;
  // The cache and the decode blocks.
  KvSlots slots_;
  KvCache<T> cache_;
  const DecodeBatch* batch_ = nullptr;
  DecodeVocab<T> dvocab_;
  DecodeMlp<T> dmlp_;
  DecodeAttention<T> dattn_;
};

}  // namespace tsp

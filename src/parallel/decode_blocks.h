// Decode blocks on a tensor-parallel shard — head group t, intermediate shard t and vocabulary rows t of a
// ShardSpec folded over the T ranks of `tp` — shared by every layout whose decode is Megatron-style:
// single (T = 1), tp, sp and tpsp (positions of the cache split over the Σ ranks of `sp`), and tsp
// --kv-layout heads (T = D, the weights TSP already placed). The rows x [n, h] are the same on every rank;
// weights never move. Communication per step, n rows, β bytes per element, received per rank:
//   decode.embed_allreduce         T > 1: all_reduce of n·h (only the owner of a token's row contributes it)
//   decode.attn_out_allreduce      T > 1: all_reduce of n·h (the partial sum o_t·Wo_tᵀ) per layer
//   decode.mlp_out_allreduce       T > 1: all_reduce of n·h per layer
//   decode.attn_partial_allgather  Σ > 1: all_gather of n·(q_dim/T + n_heads/T) per layer: every SP rank's
//                                  partial attention output and log-sum-exp over the positions it caches,
//                                  merged by log-sum-exp (kernels/attention_decode.h)
// A null communicator stands for a group of one rank.
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "kernels/rope.h"
#include "model/params.h"
#include "parallel/decode.h"

namespace tsp {

inline int group_size(const Communicator* c) {
  return c ? c->size() : 1;
}
inline int group_rank(const Communicator* c) {
  return c ? c->rank() : 0;
}

// What a decode step's attention scans on this rank: for row i, n_slots[i] slots of its sequence and, when
// positions are split (slots.parts > 1), their positions at slot_pos + i * slots.slots().
void scan_cache(const KvSlots& slots, const DecodeBatch& batch, std::vector<int64_t>& n_slots,
                int64_t* slot_pos);

// The RoPE frequencies of a decode step: those of a forward over positions < max(pos) + 1 of the step's
// rows, as HF computes them for the new tokens (only dynamic RoPE depends on it: model/rope_scaling.h).
kernels::RopeTable decode_rope_table(const ModelConfig& c, const DecodeBatch& batch);

// The end of a prefill: rows[b, h] = u of the token at position last[b] of sequence b, on every rank of
// `comm`. This rank holds u for positions[j] of every sequence at row b·positions.size() + j; it contributes
// the rows it holds when `contributes` (one holder per position must contribute), and the contributions are
// summed over comm under prefill.last_rows_allreduce (exact: one non-zero term per row).
// Sums x[0, n) over comm's ranks in place: an activation, so in bf16 under the bf16 policy
// (core/precision.h), as the training's TP sums are; in T otherwise.
template <class T>
void activation_sum(Communicator& comm, const char* label, T* x, int64_t n);

template <class T>
void prefill_last_rows(const T* u, const std::vector<int64_t>& positions, const int64_t* last, int64_t batch,
                       int64_t hidden, bool contributes, Communicator* comm, T* rows);

// Embedding lookup and LM-head logits on the vocabulary rows of this rank.
template <class T>
class DecodeVocab {
 public:
  void prepare(const ModelParams<T>& p, Communicator* tp, int64_t max_rows);
  void embed(ModelParams<T>& p, const int32_t* tokens, int64_t n, T* x);
  VocabShard shard() const { return {row_begin_, valid_rows_, tp_, vocab_}; }
  void logits(ModelParams<T>& p, const T* u, int64_t n, T* out);

 private:
  Communicator* tp_ = nullptr;
  int64_t hidden_ = 0, vocab_ = 0, row_begin_ = 0, shard_rows_ = 0, valid_rows_ = 0;
};

// The gated MLP on intermediate shard t; the output's sum over TP is all-reduced.
template <class T>
class DecodeMlp {
 public:
  void prepare(const ModelParams<T>& p, Communicator* tp, int64_t max_rows);
  void forward(ModelParams<T>& p, int layer, const T* u, int64_t n, T* y);

 private:
  Communicator* tp_ = nullptr;
  int64_t hidden_ = 0, inter_ = 0;
  Buffer<T> g_, up_, act_;  // workspace [max_rows, I/T]
};

// Attention of the new tokens on head group t against the positions this rank caches (all of them, or its
// part of the Σ-way split), appending each new token's key and value where it belongs.
template <class T>
class DecodeAttention {
 public:
  void prepare(const ModelParams<T>& p, Communicator* tp, Communicator* sp, const KvSlots& slots,
               KvCache<T>* cache, int64_t max_rows);
  // Slots to scan (and their positions, when positions are split) of every row of the step.
  void begin_step(const DecodeBatch& batch);
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);

 private:
  Communicator *tp_ = nullptr, *sp_ = nullptr;
  KvSlots slots_;
  KvCache<T>* cache_ = nullptr;
  const DecodeBatch* batch_ = nullptr;
  int64_t hidden_ = 0, q_heads_ = 0, kv_heads_ = 0, head_dim_ = 0;
  const ModelConfig* config_ = nullptr;
  kernels::RopeTable rope_;  // for the step's longest position (model/rope_scaling.h: dynamic RoPE)
  double norm_eps_ = 0;
  std::vector<int64_t> n_slots_;
  Buffer<int64_t> slot_pos_;       // workspace [max_rows, slots] (Σ > 1)
  Buffer<T> q_, k_, v_, o_, lse_;  // workspace
  Buffer<T> parts_;                // communication (Σ > 1): [Σ, max_rows, q_dim/T + heads/T]
};

}  // namespace tsp

// Rank-agnostic block math on one weight shard, shared by every layout: the single-device model applies the
// whole tensor as "shard 0 of 1", TSP applies shard after shard as they arrive, Megatron TP applies its own.
// Everything here is local compute on the tokens held by this rank; no communication.
#pragma once

#include <cstdint>

#include "kernels/attention.h"

namespace tsp {

// Shapes of one attention shard applied to n local tokens.
struct AttnShardShape {
  int64_t n = 0;        // local tokens (batch * tokens per sequence)
  int64_t hidden = 0;   // h
  int64_t q_heads = 0;  // query heads in the shard
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  int64_t q_dim() const { return q_heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }
};

// q = rope(u Wq_sᵀ), k = rope(u Wk_sᵀ), v = u Wv_sᵀ at the tokens' global positions pos[n].
template <class T>
void qkv_forward(T* q, T* k, T* v, const T* u, const T* wq, const T* wk, const T* wv, const int64_t* pos,
                 const AttnShardShape& s, double rope_theta);

// The adjoint of qkv_forward. dq and dk are consumed (rotated back in place). Accumulates du, dwq, dwk, dwv.
// q_backward + kv_backward do the same in two parts, so that a layout can overlap communication of dk/dv
// with the query part.
template <class T>
void q_backward(T* du, T* dwq, T* dq, const T* u, const T* wq, const int64_t* pos, const AttnShardShape& s,
                double rope_theta);
template <class T>
void kv_backward(T* du, T* dwk, T* dwv, T* dk, const T* dv, const T* u, const T* wk, const T* wv,
                 const int64_t* pos, const AttnShardShape& s, double rope_theta);
template <class T>
void qkv_backward(T* du, T* dwq, T* dwk, T* dwv, T* dq, T* dk, const T* dv, const T* u, const T* wq,
                  const T* wk, const T* wv, const int64_t* pos, const AttnShardShape& s, double rope_theta);

// Causal attention for `batch` sequences: queries [batch, nq, heads, d] at q_pos[nq] and keys/values
// [batch, nk, kv_heads, d] at k_pos[nk] (the same positions for every sequence of the batch).
template <class T>
void attention_batched_forward(T* o, T* lse, const T* q, const T* k, const T* v, const int64_t* q_pos,
                               const int64_t* k_pos, int64_t batch, const kernels::AttentionShape& per_seq);
template <class T>
void attention_batched_backward(T* dq, T* dk, T* dv, const T* d_o, const T* q, const T* k, const T* v,
                                const T* o, const T* lse, const int64_t* q_pos, const int64_t* k_pos,
                                int64_t batch, const kernels::AttentionShape& per_seq);

// Gated MLP on one intermediate shard of width i: y (+)= (silu(u W_gateᵀ) ⊙ (u W_upᵀ)) W_downᵀ.
// g, up, act: scratch [n, i] (left holding the gate, up and activation values).
template <class T>
void mlp_shard_forward(T* y, T* g, T* up, T* act, const T* u, const T* w_gate, const T* w_up, const T* w_down,
                       int64_t n, int64_t h, int64_t i, bool accumulate);

// The adjoint: needs g and up of this shard (saved or recomputed by the caller). Accumulates du and the
// three weight gradients. act, d_act, dg, dup: scratch [n, i].
template <class T>
void mlp_shard_backward(T* du, T* dw_gate, T* dw_up, T* dw_down, const T* dy, const T* u, const T* w_gate,
                        const T* w_up, const T* w_down, const T* g, const T* up, T* act, T* d_act, T* dg,
                        T* dup, int64_t n, int64_t h, int64_t i);

}  // namespace tsp

namespace tsp {

// Running state of the online log-sum-exp cross-entropy over vocabulary shards (kernels/cross_entropy.h).
template <class T>
struct OnlineLse {
  T *run_max, *run_sum, *target_logit;
  int32_t* argmax;  // may be null
};

// Folds one LM-head shard (rows [v_begin, v_begin + v_valid) of the vocabulary; w: [v_valid, h]) into the
// online state: logits[n, v_valid] = u wᵀ (scratch) then the online fold. Padding rows are never passed.
template <class T>
void head_shard_fold(const OnlineLse<T>& st, T* logits, const T* u, const T* w, const int32_t* targets,
                     int64_t n, int64_t h, int64_t v_begin, int64_t v_valid);

// The adjoint for one shard: recomputes the logits, then du += dlogits w and dw += dlogitsᵀ u with
// dlogits = scale * (softmax - onehot) using the final lse.
template <class T>
void head_shard_backward(T* du, T* dw, T* logits, T* dlogits, const T* u, const T* w, const T* lse,
                         const int32_t* targets, int64_t n, int64_t h, int64_t v_begin, int64_t v_valid,
                         T scale);

}  // namespace tsp

// Rank-agnostic block math on one weight shard, shared by every layout: the single-device model applies the
// whole tensor as "shard 0 of 1", TSP applies shard after shard as they arrive, Megatron TP applies its own.
// Everything here is local compute on the tokens held by this rank; no communication.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/attention.h"
#include "kernels/rope.h"
#include "kernels/weight_ref.h"
#include "model/params.h"

namespace tsp {

// Shapes of one attention shard applied to n local tokens.
struct AttnShardShape {
  int64_t n = 0;        // local tokens (batch * tokens per sequence)
  int64_t hidden = 0;   // h
  int64_t q_heads = 0;  // query heads in the shard
  int64_t kv_heads = 0;
  int64_t head_dim = 0;
  double norm_eps = 0;  // epsilon of the per-head q/k RMSNorm (Qwen3: rms_norm_eps)
  int64_t q_dim() const { return q_heads * head_dim; }
  int64_t kv_dim() const { return kv_heads * head_dim; }
};

// The projection tensors of one attention shard (values with P = const T, gradients with P = T): the
// weights, Qwen2's q/k/v biases and Qwen3's per-head q/k norm weights (both null when the model has none).
// Everything the architectures add to the projections is here, so that every layout (and decode) applies
// it by calling the functions below.
template <class P>
struct AttnProjections {
  P *wq = nullptr, *wk = nullptr, *wv = nullptr;
  P *bq = nullptr, *bk = nullptr, *bv = nullptr;
  P *q_norm = nullptr, *k_norm = nullptr;
  operator AttnProjections<const P>() const requires(!std::is_const_v<P>) {
    return {wq, wk, wv, bq, bk, bv, q_norm, k_norm};
  }
};

// Views into a packed attention shard laid out as ModelParams' attention block (a rank's own block, or a
// shard received from its owner), with that layer's q/k norm weights (replicated; null without them).
template <class P>
AttnProjections<P> attn_projections(P* packed, const AttnOffsets& off, P* q_norm, P* k_norm) {
  auto at = [packed](int64_t o) { return o < 0 ? static_cast<P*>(nullptr) : packed + o; };
  return {packed + off.q, packed + off.k, packed + off.v, at(off.bq), at(off.bk), at(off.bv), q_norm, k_norm};
}
// The same from one layer's tensors on this rank.
template <class T>
AttnProjections<T> attn_projections(const LayerWeights<T>& w) {
  return {w.wq, w.wk, w.wv, w.bq, w.bk, w.bv, w.q_norm, w.k_norm};
}

// Where qkv_forward leaves the projections of q and k before their per-head norm: the norms' backward needs
// them. Only models with q/k norms use it; a forward-only caller (decode) may leave it empty.
template <class T>
struct QkPreNorm {
  T* q = nullptr;  // [n, q_dim]
  T* k = nullptr;  // [n, kv_dim]
};

// The projection weights one attention shard is applied with: each weight and bias in T, or in bf16 as a
// TSP shard that travelled in bf16 arrived (kernels/weight_ref.h); the q/k norm weights are replicated and
// never travel, so they stay in T.
template <class T>
struct AttnWeights {
  using Ref = kernels::WeightRef<T>;
  Ref wq, wk, wv, bq, bk, bv;
  const T *q_norm = nullptr, *k_norm = nullptr;
  AttnWeights() = default;
  AttnWeights(Ref q, Ref k, Ref v, Ref b_q, Ref b_k, Ref b_v, const T* qn, const T* kn)
      : wq(q), wk(k), wv(v), bq(b_q), bk(b_k), bv(b_v), q_norm(qn), k_norm(kn) {}
  AttnWeights(const AttnProjections<const T>& w)  // NOLINT: implicit, as the views it replaces
      : AttnWeights(w.wq, w.wk, w.wv, w.bq, w.bk, w.bv, w.q_norm, w.k_norm) {}
  AttnWeights(const AttnProjections<T>& w)  // NOLINT
      : AttnWeights(AttnProjections<const T>(w)) {}
};
template <class T>
using ConstProjections = AttnWeights<std::type_identity_t<T>>;

// Views into a packed attention shard that travelled as bf16 bits W (or in T, as attn_projections).
template <class T, class W>
AttnWeights<T> attn_weights(const W* packed, const AttnOffsets& off, const T* q_norm, const T* k_norm) {
  using Ref = kernels::WeightRef<T>;
  auto at = [packed](int64_t o) { return o < 0 ? Ref() : Ref(packed + o); };
  return {Ref(packed + off.q),
          Ref(packed + off.k),
          Ref(packed + off.v),
          at(off.bq),
          at(off.bk),
          at(off.bv),
          q_norm,
          k_norm};
}

// q = rope(norm_q(u Wq_sᵀ + bq)), k = rope(norm_k(u Wk_sᵀ + bk)), v = u Wv_sᵀ + bv at the tokens' global
// positions pos[n] (bias and norm where the model has them).
template <class T>
void qkv_forward(T* q, T* k, T* v, const T* u, const ConstProjections<T>& w, const int64_t* pos,
                 const AttnShardShape& s, const kernels::RopeTable& rope, QkPreNorm<T> pre_norm = {});

// The adjoint of qkv_forward. dq and dk are consumed (turned into the gradients of the pre-norm
// projections in place). Accumulates du and every gradient in g (those that are null are not wanted);
// q_pre / k_pre: what qkv_forward left in QkPreNorm (needed only with q/k norms). q_backward + kv_backward
// do the same in two parts, so that a layout can overlap communication of dk/dv with the query part.
template <class T>
void q_backward(T* du, const AttnProjections<T>& g, T* dq, const T* u, const ConstProjections<T>& w,
                const T* q_pre, const int64_t* pos, const AttnShardShape& s, const kernels::RopeTable& rope);
template <class T>
void kv_backward(T* du, const AttnProjections<T>& g, T* dk, const T* dv, const T* u,
                 const ConstProjections<T>& w, const T* k_pre, const int64_t* pos, const AttnShardShape& s,
                 const kernels::RopeTable& rope);
template <class T>
void qkv_backward(T* du, const AttnProjections<T>& g, T* dq, T* dk, const T* dv, const T* u,
                  const ConstProjections<T>& w, QkPreNorm<T> pre_norm, const int64_t* pos,
                  const AttnShardShape& s, const kernels::RopeTable& rope);

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
using WeightOf = kernels::WeightRef<std::type_identity_t<T>>;

template <class T>
void mlp_shard_forward(T* y, T* g, T* up, T* act, const T* u, WeightOf<T> w_gate, WeightOf<T> w_up,
                       WeightOf<T> w_down, int64_t n, int64_t h, int64_t i, bool accumulate);

// The adjoint: needs g and up of this shard (saved or recomputed by the caller). Accumulates du and the
// three weight gradients. act, d_act, dg, dup: scratch [n, i].
template <class T>
void mlp_shard_backward(T* du, T* dw_gate, T* dw_up, T* dw_down, const T* dy, const T* u, WeightOf<T> w_gate,
                        WeightOf<T> w_up, WeightOf<T> w_down, const T* g, const T* up, T* act, T* d_act,
                        T* dg, T* dup, int64_t n, int64_t h, int64_t i);

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
void head_shard_fold(const OnlineLse<T>& st, T* logits, const T* u, WeightOf<T> w, const int32_t* targets,
                     int64_t n, int64_t h, int64_t v_begin, int64_t v_valid);

// The adjoint for one shard: recomputes the logits, then du += dlogits w and dw += dlogitsᵀ u with
// dlogits = scale * (softmax - onehot) using the final lse.
template <class T>
void head_shard_backward(T* du, T* dw, T* logits, T* dlogits, const T* u, WeightOf<T> w, const T* lse,
                         const int32_t* targets, int64_t n, int64_t h, int64_t v_begin, int64_t v_valid,
                         T scale);

}  // namespace tsp

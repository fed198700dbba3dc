// Attention on the TP×SP mesh (docs/layouts.md): TP rank t applies head group t (column-parallel q, k, v;
// row-parallel o) to its SP group's tokens. With Σ > 1 the K/V of head group t are all-gathered over SP (in
// sequence order) for causal attention with global positions; the partial o·Wo_tᵀ is summed over TP
// (TpTokens). Saved per layer: o and its log-sum-exp only; the backward recomputes q, k, v and re-gathers
// K/V, then reduce-scatters dK/dV to their token owners over SP (the adjoint of the gather).
#pragma once

#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/blocks.h"
#include "parallel/kv_cache.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/tpsp/tp_tokens.h"

namespace tsp {

template <class T>
class MeshAttention {
 public:
  // training = false (prefill): nothing is kept for a backward (o and lse of one layer at a time, no
  // gradient buffers).
  void prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training = true);
  // Prefill: the forward also writes this rank's keys and values into `cache` (its head group; every
  // position when Σ = 1, else its SP group's positions in storage order, the first slots of kv_cache.h's
  // positions placement). Null: no cache.
  void set_cache(KvCache<T>* cache) { cache_ = cache; }
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);
  void backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du);

 private:
  // q, k, v of head group t for the group tokens ug; K and V of all S positions end in k_full_, v_full_.
  // pre_norm: where to keep q and k before their per-head norms (the backward, with q/k norms).
  void project_and_gather(const LayerWeights<T>& w, const T* ug, QkPreNorm<T> pre_norm);
  // all-gather of my k|v (in my slot of kv_gather_) over SP and reorder into sequence order.
  void gather_kv();
  // The adjoint: reorder dK/dV into per-SP-rank blocks and reduce-scatter them to their owners.
  CommRequest reduce_scatter_kv_grad();

  // Saved o and lse of `layer` (one reused buffer when not training).
  T* saved_o(int layer) { return saved_o_[size_t(training_ ? layer : 0)].data(); }
  T* saved_lse(int layer) { return saved_lse_[size_t(training_ ? layer : 0)].data(); }
  void store_kv(int layer);

  const MeshLayout* L_ = nullptr;
  TpTokens<T>* tp_ = nullptr;
  bool training_ = true;
  KvCache<T>* cache_ = nullptr;
  AttnShardShape shape_;          // head group t on the group's n tokens
  kernels::AttentionShape attn_;  // per sequence: the group's S/Σ queries against all S keys
  int64_t local_kv_ = 0;          // n · kv_dim/T
  kernels::RopeTable rope_;
  std::vector<Buffer<T>> saved_o_, saved_lse_;  // activations, per layer
  Buffer<T> kv_gather_;                         // communication (Σ > 1): [Σ, 2, n, kv_dim/T]
  Buffer<T> dkv_local_;                         // workspace (Σ > 1): reduce-scattered dK|dV of my tokens
  Buffer<T> q_, k_full_, v_full_, dq_, do_, dk_full_, dv_full_;  // workspace
  Buffer<T> q_pre_, k_pre_;  // workspace (q/k norms): pre-norm q and k of the group tokens
};

}  // namespace tsp

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
#include "parallel/kv_exchange.h"
#include "parallel/stash.h"
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
  // The stash slot of `layer` (one reused slot when not training), and its saved lse.
  int64_t slot(int layer) const { return training_ ? layer : 0; }
  T* saved_lse(int layer) { return saved_lse_[size_t(slot(layer))].data(); }
  void store_kv(int layer);

  const MeshLayout* L_ = nullptr;
  TpTokens<T>* tp_ = nullptr;
  bool training_ = true;
  KvCache<T>* cache_ = nullptr;
  AttnShardShape shape_;          // head group t on the group's n tokens
  kernels::AttentionShape attn_;  // per sequence: the group's S/Σ queries against all S keys
  kernels::RopeTable rope_;
  Stash<T> saved_o_;                  // activations per layer (parallel/stash.h)
  std::vector<Buffer<T>> saved_lse_;  // activations per layer
  KvExchange<T> kv_;                  // Σ > 1: K/V all-gather and dK/dV reduce-scatter over SP
  Buffer<T> q_, k_full_, v_full_, dq_, do_, dk_full_, dv_full_;  // workspace
  Buffer<T> q_pre_, k_pre_;  // workspace (q/k norms): pre-norm q and k of the group tokens
};

}  // namespace tsp

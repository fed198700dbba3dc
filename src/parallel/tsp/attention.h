// TSP attention (tsp-spec.md §5, §7): the packed attention shard [Wq_r | Wk_r | Wv_r | Wo_r] of every owner r
// is broadcast in turn; each rank applies it to its own tokens, all-gathers K/V of head group r for the
// causal attention over the whole sequence, and adds o_r·Wo_rᵀ into its output locally (no all-reduce).
// Backward: the adjoints, in reverse: re-broadcast, re-gather (or keep), attention backward, reduce-scatter
// of dK/dV to the token owners, and the reduce of the packed weight-gradient partial to its owner.
#pragma once

#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/blocks.h"
#include "parallel/grad_wire.h"
#include "parallel/kv_cache.h"
#include "parallel/kv_exchange.h"
#include "parallel/stash.h"
#include "parallel/tsp/ring.h"

namespace tsp {

template <class T>
class TspAttention {
 public:
  // Allocates every buffer for the layout's step shape. keep_gathered_kv: keep the gathered K/V of every
  // layer and head group from the forward (activations: 2·B·S·kv_dim per layer) instead of re-gathering.
  // training = false (prefill): nothing is kept for a backward (o and lse of one head group at a time, no
  // gradient buffers).
  // bf16_wire (float only, under bf16 products): the shards are broadcast as bf16 (ring.h).
  void prepare(const TspLayout& L, const ModelParams<T>& p, bool keep_gathered_kv, bool training = true,
               bool bf16_wire = false);
  // Prefill: the forward also writes the KV cache (kv_cache.h). heads: in the all-gather of head group p,
  // rank p receives every position's keys and values of its own head group and keeps them (slot = position).
  // sequence: rank p keeps its own tokens' keys and values of every head group (columns r·kv_dim/D of the
  // cache rows), in storage order (the zigzag slots of the positions placement). Null: no cache.
  void set_cache(KvCache<T>* cache, KvLayout layout) {
    cache_ = cache;
    cache_layout_ = layout;
  }
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);
  void backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du);

 private:
  // Broadcasts the shards of `layer` and calls use(w, r) with each (W: T, or bf16 bits on a bf16 wire).
  template <class Use>
  void each_shard(ModelParams<T>& p, int layer, Use&& use);
  // One owner's shard r applied to my tokens (forward_head_group), and its adjoint. w: the packed shard as it
  // travelled (in T or bf16); `layer` gives the replicated q/k norms.
  template <class W>
  void forward_head_group(ModelParams<T>& p, int layer, int r, const W* w, const T* u, T* y);
  template <class W>
  void backward_head_group(ModelParams<T>& p, int layer, int r, const W* w, const T* u, const T* dy, T* du,
                           T* own_grad);
  // The stash slot of (layer, head group r): o and, with keep_gathered_kv, the gathered K|V; one slot,
  // reused, when not training. The lse of (layer, r), in T.
  int64_t slot(int layer, int r) const { return training_ ? int64_t(layer) * L_->D + r : 0; }
  T* saved_lse(int layer, int r) {
    return training_ ? saved_lse_[size_t(layer)].data() + r * L_->n * shape_.q_heads : saved_lse_[0].data();
  }

  const TspLayout* L_ = nullptr;
  AttnShardShape shape_;          // one head group applied to the local tokens
  kernels::AttentionShape attn_;  // per sequence: my per_seq queries against all S keys
  AttnOffsets off_;
  int64_t shard_numel_ = 0;  // packed attention shard
  int64_t full_kv_ = 0;      // B · S · kv_dim_s: gathered K (or V) of one head group
  bool keep_ = false, training_ = true;
  KvCache<T>* cache_ = nullptr;
  KvLayout cache_layout_ = KvLayout::heads;
  kernels::RopeTable rope_;
  int kv_replicas_ = 1;  // head groups sharing each KV head (model/params.h)
  // Saved (1/D-sized per layer; parallel/stash.h, bf16 under the bf16 policy): o of every head group for my
  // queries, slot (layer, r) of [n, q_dim_s]; with keep_gathered_kv the gathered K|V, slot (layer, r) of
  // [2, B, S, kv_dim_s]. Their lse in T.
  Stash<T> saved_o_, kept_kv_;
  std::vector<Buffer<T>> saved_lse_;
  // Communication: the two broadcast buffers, the packed weight-gradient partial sent to its owner.
  Buffer<T> bcast_[2], grad_partial_;
  Buffer<uint16_t> bcast16_[2];  // the broadcast buffers of a bf16 weight wire (instead of bcast_)
  bool bf16_wire_ = false;
  // The all-gather of one head group's k|v over the D ranks and the reduce-scatter of dK|dV (its buffers).
  KvExchange<T> kv_;
  GradWire<T> grad_wire_;  // the weight-gradient reduce under --grad-reduce-dtype bf16
  // Workspace: q of one head group, K/V in sequence order (unless kept), and the gradients; with q/k norms,
  // the pre-norm q and k of the head group being differentiated.
  Buffer<T> q_, k_full_, v_full_, dq_, do_, dk_full_, dv_full_, q_pre_, k_pre_;
};

}  // namespace tsp

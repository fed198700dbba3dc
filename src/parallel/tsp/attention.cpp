#include "parallel/tsp/attention.h"

#include <algorithm>
#include <type_traits>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/bf16.h"
#include "kernels/gemm.h"

namespace tsp {

template <class T>
void TspAttention<T>::prepare(const TspLayout& L, const ModelParams<T>& p, bool keep_gathered_kv,
                              bool training, bool bf16_wire) {
  TSP_CHECK(!bf16_wire || (std::is_same_v<T, float>), "a bf16 weight wire narrows float weights only");
  bf16_wire_ = bf16_wire;
  const ModelConfig& c = p.config();
  const ShardSpec& spec = p.spec();
  L_ = &L;
  keep_ = keep_gathered_kv && training;
  training_ = training;
  rope_ = c.rope_table(L.seq_len);
  shape_ = {L.n, c.hidden_size, spec.q_heads.size, spec.kv_heads.size, c.head_dim, c.rms_norm_eps};
  kv_replicas_ = spec.kv_replicas;
  attn_ = {L.per_seq, L.seq_len, spec.q_heads.size, spec.kv_heads.size, c.head_dim};
  off_ = p.attn_offsets();
  shard_numel_ = p.value(p.attn_block(0)).size();
  full_kv_ = L.batch * L.seq_len * shape_.kv_dim();
  const int64_t n_q = L.n * shape_.q_dim(), layers = c.num_hidden_layers;

  // Nothing is kept for a backward when not training: o of one head group at a time, in T.
  if (training)
    saved_o_.prepare(layers * L.D, n_q);
  else
    saved_o_.prepare(1, n_q, false);
  saved_lse_.clear();
  for (int64_t l = 0; l < (training ? layers : 1); ++l)
    saved_lse_.emplace_back((training ? L.D : 1) * L.n * shape_.q_heads, Mem::activations);
  const int64_t bwd = training ? 1 : 0;  // gradient buffers only when training
  kept_kv_.prepare(keep_ ? layers * L.D : 0, 2 * full_kv_);
  for (auto& b : bcast_) b = Buffer<T>(bf16_wire ? 0 : shard_numel_, Mem::communication);
  for (auto& b : bcast16_) b = Buffer<uint16_t>(bf16_wire ? shard_numel_ : 0, Mem::communication);
  kv_.prepare(ZigzagAxis{L.comm, L.D, L.p, L.batch, L.seq_len}, shape_.kv_dim(), training);
  // The weight-gradient partial is the reduce's send buffer, or under --grad-reduce-dtype bf16 rounded into
  // the gradient wire's (send | receive) pair first (grad_wire.h).
  const bool grad16 = training && bf16_grad_reduce<T>();
  grad_partial_ = Buffer<T>(bwd * shard_numel_, grad16 ? Mem::workspace : Mem::communication);
  grad_wire_.prepare(grad16 ? 2 * shard_numel_ : 0);
  q_ = Buffer<T>(n_q, Mem::workspace);
  k_full_ = Buffer<T>(keep_ ? 0 : full_kv_, Mem::workspace);
  v_full_ = Buffer<T>(keep_ ? 0 : full_kv_, Mem::workspace);
  dq_ = Buffer<T>(bwd * n_q, Mem::workspace);
  do_ = Buffer<T>(bwd * n_q, Mem::workspace);
  dk_full_ = Buffer<T>(bwd * full_kv_, Mem::workspace);
  dv_full_ = Buffer<T>(bwd * full_kv_, Mem::workspace);
  q_pre_ = Buffer<T>(c.qk_norm ? bwd * n_q : 0, Mem::workspace);
  k_pre_ = Buffer<T>(c.qk_norm ? bwd * L.n * shape_.kv_dim() : 0, Mem::workspace);
}

template <class T>
template <class Use>
void TspAttention<T>::each_shard(ModelParams<T>& p, int layer, Use&& use) {
  const T* own = p.value(p.attn_block(layer)).data();
  with_pair(bf16_wire_, bcast_, bcast16_, [&](auto* buf0, auto* buf1) {
    broadcast_shards(*L_, "attn.weight_bcast", own, shard_numel_, buf0, buf1, use);
  });
}

template <class T>
void TspAttention<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  each_shard(p, layer, [&](const auto* w, int r) { forward_head_group(p, layer, r, w, u, y); });
}

template <class T>
template <class W>
void TspAttention<T>::forward_head_group(ModelParams<T>& p, int layer, int r, const W* w, const T* u, T* y) {
  const TspLayout& L = *L_;
  T* k_local = kv_.mine();
  {
    // My tokens, head group r, RoPE at their global positions; k and v land where the all-gather sends
    // them from (kv_exchange.h).
    TraceSpan span("attn.fwd", "compute");
    const LayerWeights<T> lw = p.layer(layer);
    qkv_forward(q_.data(), k_local, k_local + kv_.local(), u,
                attn_weights<T>(w, off_, static_cast<const T*>(lw.q_norm), static_cast<const T*>(lw.k_norm)),
                L.token_positions.data(), shape_, rope_);
  }
  T* k = keep_ ? kept_kv_.work(slot(layer, r)) : k_full_.data();
  T* v = keep_ ? k + full_kv_ : v_full_.data();
  kv_.gather("attn.kv_allgather", k, v);
  if (keep_) kept_kv_.save(slot(layer, r));
  if (cache_) {
    const int64_t kd = shape_.kv_dim();
    if (cache_layout_ == KvLayout::heads && r == L.p) {
      for (int64_t b = 0; b < L.batch; ++b)
        cache_->store(layer, b, 0, L.seq_len, k + b * L.seq_len * kd, v + b * L.seq_len * kd, kd, 0, kd);
    } else if (cache_layout_ == KvLayout::sequence && r % kv_replicas_ == 0) {
      // Every KV head once: a replicated one from the first head group that holds it.
      const T* kl = kv_.mine();
      for (int64_t b = 0; b < L.batch; ++b)
        cache_->store(layer, b, 0, L.per_seq, kl + b * L.per_seq * kd, kl + kv_.local() + b * L.per_seq * kd,
                      kd, (r / kv_replicas_) * kd, kd);
    }
  }
  TraceSpan span("attn.fwd", "compute");
  T* o = saved_o_.work(slot(layer, r));
  attention_batched_forward(o, saved_lse(layer, r), q_.data(), k, v, L.seq_positions.data(),
                            L.key_positions.data(), L.batch, attn_);
  saved_o_.save(slot(layer, r));
  // The sum over head groups is local: y = Σ_r o_r Wo_rᵀ.
  kernels::linear_forward(y, o, kernels::WeightRef<T>(w + off_.o), L.n, shape_.q_dim(), shape_.hidden, r > 0);
}

template <class T>
void TspAttention<T>::backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  T* own_grad = p.grad(p.attn_block(layer)).data();
  each_shard(p, layer,
             [&](const auto* w, int r) { backward_head_group(p, layer, r, w, u, dy, du, own_grad); });
}

template <class T>
template <class W>
void TspAttention<T>::backward_head_group(ModelParams<T>& p, int layer, int r, const W* w, const T* u,
                                          const T* dy, T* du, T* own_grad) {
  const TspLayout& L = *L_;
  T* k_local = kv_.mine();
  const LayerWeights<T> lw = p.layer(layer), lg = p.layer_grad(layer);
  const ConstProjections<T> proj =
      attn_weights<T>(w, off_, static_cast<const T*>(lw.q_norm), static_cast<const T*>(lw.k_norm));
  {
    // Of head group r only o and lse were saved: recompute q, k, v from u.
    TraceSpan span("attn.bwd", "compute");
    qkv_forward(q_.data(), k_local, k_local + kv_.local(), u, proj, L.token_positions.data(), shape_, rope_,
                {q_pre_.data(), k_pre_.data()});
  }
  const T *k = k_full_.data(), *v = v_full_.data();
  if (keep_) {
    k = kept_kv_.load(slot(layer, r));
    v = k + full_kv_;
  } else {
    kv_.gather("attn.kv_allgather", k_full_.data(), v_full_.data());
  }
  T* g = grad_partial_.data();
  // The weight gradients go to the partial for owner r; the q/k norms are replicated: mine, summed over all
  // ranks with the other norms (TspStrategy::reduce_replicated_grads).
  const AttnProjections<T> grads = attn_projections<T>(g, off_, lg.q_norm, lg.k_norm);
  {
    TraceSpan span("attn.bwd", "compute");
    const T* o = saved_o_.load(slot(layer, r));
    grad_partial_.zero();
    do_.zero();
    kernels::linear_backward(do_.data(), g + off_.o, dy, o, kernels::WeightRef<T>(w + off_.o), L.n,
                             shape_.q_dim(), shape_.hidden);
    dq_.zero();
    dk_full_.zero();
    dv_full_.zero();
    attention_batched_backward(dq_.data(), dk_full_.data(), dv_full_.data(), do_.data(), q_.data(), k, v, o,
                               saved_lse(layer, r), L.seq_positions.data(), L.key_positions.data(), L.batch,
                               attn_);
  }
  // The dK/dV reduce-scatter travels while the query side of the projection backward runs; only the key and
  // value side needs its result.
  CommRequest kv_grad = kv_.reduce_scatter("attn.kv_grad_reducescatter", dk_full_.data(), dv_full_.data());
  {
    TraceSpan span("attn.bwd", "compute");
    q_backward(du, grads, dq_.data(), u, proj, q_pre_.data(), L.token_positions.data(), shape_, rope_);
  }
  T* dkv = kv_.finish(kv_grad);
  {
    TraceSpan span("attn.bwd", "compute");
    kv_backward(du, grads, dkv, dkv + kv_.local(), u, proj, k_pre_.data(), L.token_positions.data(), shape_,
                rope_);
  }
  // The adjoint of the broadcast: the owner receives the sum of every rank's partial. It folds its
  // accumulated gradient into its own contribution so that the reduce lands directly in the gradient block.
  if (grad_wire_.bf16()) {
    grad_wire_.reduce_add(*L.comm, "attn.weight_grad_reduce", g, own_grad, shard_numel_, r);
  } else if (r == L.p) {
    for (int64_t i = 0; i < shard_numel_; ++i) g[i] += own_grad[i];
    L.comm->reduce("attn.weight_grad_reduce", g, own_grad, shard_numel_, r);
  } else {
    L.comm->reduce("attn.weight_grad_reduce", g, static_cast<T*>(nullptr), shard_numel_, r);
  }
}

template class TspAttention<float>;
template class TspAttention<double>;

}  // namespace tsp

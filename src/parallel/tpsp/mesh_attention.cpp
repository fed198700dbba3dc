#include "parallel/tpsp/mesh_attention.h"

#include <algorithm>

#include "core/trace.h"
#include "kernels/gemm.h"

namespace tsp {

template <class T>
void MeshAttention<T>::prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training) {
  const ModelConfig& c = p.config();
  const ShardSpec& spec = p.spec();
  L_ = &L;
  tp_ = &tp;
  training_ = training;
  rope_ = c.rope_table(L.seq_len);
  shape_ = {L.n, c.hidden_size, spec.q_heads.size, spec.kv_heads.size, c.head_dim, c.rms_norm_eps};
  attn_ = {L.group_per_seq, L.seq_len, spec.q_heads.size, spec.kv_heads.size, c.head_dim};
  const int64_t local_kv = L.n * shape_.kv_dim();
  const int64_t n_q = L.n * shape_.q_dim(), full_kv = L.batch * L.seq_len * shape_.kv_dim();
  // Nothing is kept for a backward when not training: o of one layer at a time, in T.
  if (training)
    saved_o_.prepare(c.num_hidden_layers, n_q);
  else
    saved_o_.prepare(1, n_q, false);
  saved_lse_.clear();
  for (int64_t l = 0; l < (training ? c.num_hidden_layers : 1); ++l)
    saved_lse_.emplace_back(L.n * shape_.q_heads, Mem::activations);
  const int64_t bwd = training ? 1 : 0;  // gradient buffers only when training
  kv_ = KvExchange<T>();
  if (L.sp_size > 1)
    kv_.prepare(ZigzagAxis{L.sp, L.sp_size, L.sp_rank, L.batch, L.seq_len}, shape_.kv_dim(), training);
  q_ = Buffer<T>(n_q, Mem::workspace);
  dq_ = Buffer<T>(bwd * n_q, Mem::workspace);
  do_ = Buffer<T>(bwd * n_q, Mem::workspace);
  for (Buffer<T>* b : {&k_full_, &v_full_}) *b = Buffer<T>(full_kv, Mem::workspace);
  for (Buffer<T>* b : {&dk_full_, &dv_full_}) *b = Buffer<T>(bwd * full_kv, Mem::workspace);
  q_pre_ = Buffer<T>(c.qk_norm ? bwd * n_q : 0, Mem::workspace);
  k_pre_ = Buffer<T>(c.qk_norm ? bwd * local_kv : 0, Mem::workspace);
}

template <class T>
void MeshAttention<T>::project_and_gather(const LayerWeights<T>& w, const T* ug, QkPreNorm<T> pre_norm) {
  const MeshLayout& L = *L_;
  const bool sp = L.sp_size > 1;
  // With Σ = 1 the group's tokens are the whole sequence in order: k and v are already K and V.
  T* k = sp ? kv_.mine() : k_full_.data();
  T* v = sp ? k + kv_.local() : v_full_.data();
  {
    TraceSpan span("attn.qkv", "compute");
    qkv_forward(q_.data(), k, v, ug, attn_projections(w), L.group_token_positions.data(), shape_, rope_,
                pre_norm);
  }
  if (sp) kv_.gather("sp.kv_allgather", k_full_.data(), v_full_.data());
}

// Keys and values of my head group: all S positions in order when Σ = 1 (k_full_, v_full_), else my SP
// group's positions in storage order (where the all-gather sent them from, kv_exchange.h).
template <class T>
void MeshAttention<T>::store_kv(int layer) {
  const MeshLayout& L = *L_;
  const int64_t kd = shape_.kv_dim();
  const bool sp = L.sp_size > 1;
  const T* k = sp ? kv_.mine() : k_full_.data();
  const T* v = sp ? k + kv_.local() : v_full_.data();
  const int64_t per = sp ? L.group_per_seq : L.seq_len;
  for (int64_t b = 0; b < L.batch; ++b)
    cache_->store(layer, b, 0, per, k + b * per * kd, v + b * per * kd, kd, 0, kd);
}

template <class T>
void MeshAttention<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  const MeshLayout& L = *L_;
  LayerWeights<T> w = p.layer(layer);
  const T* ug = tp_->gather_input("tp.attn_in_allgather", u);
  project_and_gather(w, ug, {});
  if (cache_) store_kv(layer);
  {
    TraceSpan span("attn.fwd", "compute");
    T* o = saved_o_.work(slot(layer));
    attention_batched_forward(o, saved_lse(layer), q_.data(), k_full_.data(), v_full_.data(),
                              L.group_positions.data(), L.key_positions.data(), L.batch, attn_);
    saved_o_.save(slot(layer));
    // Row-parallel output projection: a partial sum over the TP group's head groups.
    kernels::linear_forward(tp_->partial(y), o, w.wo, L.n, shape_.q_dim(), shape_.hidden);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.attn_out_reducescatter" : "tp.attn_out_allreduce", y, false);
}

template <class T>
void MeshAttention<T>::backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  const MeshLayout& L = *L_;
  LayerWeights<T> w = p.layer(layer);
  LayerWeights<T> g = p.layer_grad(layer);
  const T* dyg = tp_->gather_output_grad("tp.attn_out_grad_allgather", dy);
  // Megatron's behaviour: the gathered input is not kept from the forward but gathered again.
  const T* ug = tp_->gather_input("tp.attn_in_allgather", u);
  project_and_gather(w, ug, {q_pre_.data(), k_pre_.data()});
  const T* o = saved_o_.load(slot(layer));
  {
    TraceSpan span("attn.bwd", "compute");
    do_.zero();
    kernels::linear_backward(do_.data(), g.wo, dyg, o, w.wo, L.n, shape_.q_dim(), shape_.hidden);
    dq_.zero();
    dk_full_.zero();
    dv_full_.zero();
    attention_batched_backward(dq_.data(), dk_full_.data(), dv_full_.data(), do_.data(), q_.data(),
                               k_full_.data(), v_full_.data(), o, saved_lse(layer), L.group_positions.data(),
                               L.key_positions.data(), L.batch, attn_);
  }
  // The input gradient is a partial sum over TP (each rank saw one head group).
  T* dug = tp_->partial(du);
  const bool sp = L.sp_size > 1;
  // The dK/dV reduce-scatter travels while the query side of the projection backward runs.
  CommRequest kv_grad =
      sp ? kv_.reduce_scatter("sp.kv_grad_reducescatter", dk_full_.data(), dv_full_.data()) : CommRequest();
  {
    TraceSpan span("attn.bwd", "compute");
    q_backward(dug, attn_projections(g), dq_.data(), ug, attn_projections(w), q_pre_.data(),
               L.group_token_positions.data(), shape_, rope_);
  }
  T* dk = sp ? kv_.finish(kv_grad) : dk_full_.data();
  T* dv = sp ? dk + kv_.local() : dv_full_.data();
  {
    TraceSpan span("attn.bwd", "compute");
    kv_backward(dug, attn_projections(g), dk, dv, ug, attn_projections(w), k_pre_.data(),
                L.group_token_positions.data(), shape_, rope_);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.attn_in_grad_reducescatter" : "tp.attn_in_grad_allreduce", du,
                      true);
}

template class MeshAttention<float>;
template class MeshAttention<double>;

}  // namespace tsp

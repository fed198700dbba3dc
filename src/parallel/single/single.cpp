#include "parallel/single/single.h"

#include <cstring>
#include <numeric>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "parallel/tpsp/mesh_decode.h"

namespace tsp {

template <class T>
void SingleStrategy<T>::validate(const ModelConfig& c, int64_t batch, int64_t seq_len) const {
  TSP_REQUIRE(batch > 0, "--batch must be positive, got {}", batch);
  c.require_sequence_length(seq_len, fmt::format("--seq-len {}", seq_len));
}

template <class T>
std::vector<int64_t> SingleStrategy<T>::local_positions(int64_t seq_len) const {
  std::vector<int64_t> p(static_cast<size_t>(seq_len));
  std::iota(p.begin(), p.end(), int64_t(0));
  return p;
}

template <class T>
void SingleStrategy<T>::prepare(ModelParams<T>& p, int64_t batch, int64_t seq_len) {
  const ModelConfig& c = p.config();
  batch_ = batch;
  seq_ = seq_len;
  n_ = batch * seq_len;
  pos_seq_ = local_positions(seq_len);
  pos_tok_.resize(size_t(n_));
  for (int64_t i = 0; i < n_; ++i) pos_tok_[size_t(i)] = pos_seq_[size_t(i % seq_len)];
  shape_ = {n_, c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.rms_norm_eps};
  attn_ = {seq_len, seq_len, c.num_attention_heads, c.num_key_value_heads, c.head_dim};
  rope_ = c.rope_table(seq_len);
  const int64_t qd = shape_.q_dim(), kd = shape_.kv_dim(), I = c.intermediate_size, V = c.vocab_size;
  const int64_t L = c.num_hidden_layers;
  for (Stash<T>* st : {&saved_.q, &saved_.o}) st->prepare(L, n_ * qd);
  for (Stash<T>* st : {&saved_.k, &saved_.v}) st->prepare(L, n_ * kd);
  saved_.q_pre.prepare(L, c.qk_norm ? n_ * qd : 0);
  saved_.k_pre.prepare(L, c.qk_norm ? n_ * kd : 0);
  for (Stash<T>* st : {&saved_.g, &saved_.up}) st->prepare(L, n_ * I);
  saved_lse_.clear();
  for (int64_t l = 0; l < L; ++l) saved_lse_.emplace_back(n_ * c.num_attention_heads, Mem::activations);
  lse_ = Buffer<T>(n_, Mem::activations);
  loss_ = Buffer<T>(n_, Mem::workspace);
  run_max_ = Buffer<T>(n_, Mem::workspace);
  run_sum_ = Buffer<T>(n_, Mem::workspace);
  target_logit_ = Buffer<T>(n_, Mem::workspace);
  dq_ = Buffer<T>(n_ * qd, Mem::workspace);
  dk_ = Buffer<T>(n_ * kd, Mem::workspace);
  dv_ = Buffer<T>(n_ * kd, Mem::workspace);
  do_ = Buffer<T>(n_ * qd, Mem::workspace);
  act_ = Buffer<T>(n_ * I, Mem::workspace);
  dact_ = Buffer<T>(n_ * I, Mem::workspace);
  dg_ = Buffer<T>(n_ * I, Mem::workspace);
  dup_ = Buffer<T>(n_ * I, Mem::workspace);
  logits_ = Buffer<T>(n_ * V, Mem::workspace);
  dlogits_ = Buffer<T>(n_ * V, Mem::workspace);
}

template <class T>
void SingleStrategy<T>::embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) {
  const ModelConfig& c = p.config();
  std::memset(x, 0, sizeof(T) * size_t(n_ * c.hidden_size));
  kernels::embedding_forward(x, p.value(p.vocab_block()).data() + p.embed_offset(), tokens, n_, c.hidden_size,
                             0, c.vocab_size);
}

template <class T>
void SingleStrategy<T>::embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) {
  const ModelConfig& c = p.config();
  kernels::embedding_backward(p.grad(p.vocab_block()).data() + p.embed_offset(), dx, tokens, n_,
                              c.hidden_size, 0, c.vocab_size);
}

template <class T>
void SingleStrategy<T>::attention_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  TraceSpan span("attn.fwd", "compute");
  LayerWeights<T> w = p.layer(layer);
  Saved& s = saved_;
  T *q = s.q.work(layer), *k = s.k.work(layer), *v = s.v.work(layer);
  qkv_forward(q, k, v, u, attn_projections(w), pos_tok_.data(), shape_, rope_,
              {s.q_pre.work(layer), s.k_pre.work(layer)});
  for (Stash<T>* st : {&s.q, &s.k, &s.v, &s.q_pre, &s.k_pre}) st->save(layer);
  T* o = s.o.work(layer);
  attention_batched_forward(o, saved_lse_[size_t(layer)].data(), q, k, v, pos_seq_.data(), pos_seq_.data(),
                            batch_, attn_);
  s.o.save(layer);
  kernels::linear_forward(y, o, w.wo, n_, shape_.q_dim(), shape_.hidden);
}

template <class T>
void SingleStrategy<T>::attention_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  TraceSpan span("attn.bwd", "compute");
  LayerWeights<T> w = p.layer(layer);
  LayerWeights<T> g = p.layer_grad(layer);
  Saved& s = saved_;
  const T* o = s.o.load(layer);
  do_.zero();
  kernels::linear_backward(do_.data(), g.wo, dy, o, w.wo, n_, shape_.q_dim(), shape_.hidden);
  dq_.zero();
  dk_.zero();
  dv_.zero();
  attention_batched_backward(dq_.data(), dk_.data(), dv_.data(), do_.data(), s.q.load(layer), s.k.load(layer),
                             s.v.load(layer), o, saved_lse_[size_t(layer)].data(), pos_seq_.data(),
                             pos_seq_.data(), batch_, attn_);
  q_backward(du, attn_projections(g), dq_.data(), u, attn_projections(w), s.q_pre.load(layer),
             pos_tok_.data(), shape_, rope_);
  kv_backward(du, attn_projections(g), dk_.data(), dv_.data(), u, attn_projections(w), s.k_pre.load(layer),
              pos_tok_.data(), shape_, rope_);
}

template <class T>
void SingleStrategy<T>::mlp_forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  TraceSpan span("mlp.fwd", "compute");
  LayerWeights<T> w = p.layer(layer);
  Saved& s = saved_;
  // Under bf16 the forward's SwiGLU reads g and up before they are rounded for the backward (they are
  // computed and consumed inside one call); the backward recomputes the activation from the rounded ones.
  mlp_shard_forward(y, s.g.work(layer), s.up.work(layer), act_.data(), u, w.gate, w.up, w.down, n_,
                    shape_.hidden, p.config().intermediate_size, false);
  s.g.save(layer);
  s.up.save(layer);
}

template <class T>
void SingleStrategy<T>::mlp_backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  TraceSpan span("mlp.bwd", "compute");
  LayerWeights<T> w = p.layer(layer);
  LayerWeights<T> g = p.layer_grad(layer);
  Saved& s = saved_;
  mlp_shard_backward(du, g.gate, g.up, g.down, dy, u, w.gate, w.up, w.down, s.g.load(layer), s.up.load(layer),
                     act_.data(), dact_.data(), dg_.data(), dup_.data(), n_, shape_.hidden,
                     p.config().intermediate_size);
}

template <class T>
double SingleStrategy<T>::head_forward(ModelParams<T>& p, const T* u, const int32_t* targets,
                                       int32_t* argmax) {
  const ModelConfig& c = p.config();
  kernels::online_lse_init(run_max_.data(), run_sum_.data(), target_logit_.data(), argmax, n_);
  OnlineLse<T> st{run_max_.data(), run_sum_.data(), target_logit_.data(), argmax};
  head_shard_fold(st, logits_.data(), u, p.value(p.vocab_block()).data() + p.lm_head_offset(), targets, n_,
                  c.hidden_size, 0, c.vocab_size);
  T* loss = loss_.data();
  kernels::online_lse_finish(lse_.data(), loss, run_max_.data(), run_sum_.data(), target_logit_.data(),
                             targets, n_, kernels::kIgnoreIndex);
  double sum = 0;
  for (int64_t i = 0; i < n_; ++i) sum += double(loss[i]);
  return sum;
}

template <class T>
void SingleStrategy<T>::head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) {
  const ModelConfig& c = p.config();
  head_shard_backward(du, p.grad(p.vocab_block()).data() + p.lm_head_offset(), logits_.data(),
                      dlogits_.data(), u, p.value(p.vocab_block()).data() + p.lm_head_offset(), lse_.data(),
                      targets, n_, c.hidden_size, 0, c.vocab_size, scale);
}

template <class T>
void SingleStrategy<T>::head_logits(ModelParams<T>& p, const T* u, T* logits) {
  const ModelConfig& c = p.config();
  kernels::linear_forward(logits, u, p.value(p.vocab_block()).data() + p.lm_head_offset(), n_, c.hidden_size,
                          c.vocab_size);
}

template <class T>
void SingleStrategy<T>::gather_token_rows(const T* local, T* full, int64_t cols) {
  std::memcpy(full, local, sizeof(T) * size_t(n_ * cols));
}

template <class T>
std::unique_ptr<Decoder<T>> SingleStrategy<T>::make_decoder(ModelParams<T>& p, const DecodeOptions& o) {
  TSP_REQUIRE(
      !o.kv_layout_given,
      "--kv-layout chooses where TSP keeps its KV cache; --strategy single keeps all of it on one rank");
  // The single device is the 1 x 1 mesh: the same decode blocks with no communicator.
  return std::make_unique<MeshDecode<T>>(p, DecodeMesh{});
}

template class SingleStrategy<float>;
template class SingleStrategy<double>;

}  // namespace tsp

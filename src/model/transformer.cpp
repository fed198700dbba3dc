#include "model/transformer.h"

#include <cstring>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/cross_entropy.h"
#include "kernels/rmsnorm.h"

namespace tsp {

using namespace kernels;

template <class T>
Transformer<T>::Transformer(ModelParams<T>& params, Strategy<T>& strategy) : p_(params), s_(strategy) {}

template <class T>
void Transformer<T>::set_shape(int64_t batch, int64_t seq_len) {
  if (batch == batch_ && seq_len == seq_len_) return;
  const ModelConfig& c = p_.config();
  s_.validate(c, batch, seq_len);
  batch_ = batch;
  seq_len_ = seq_len;
  seqs_ = s_.batch_range(batch);
  positions_ = s_.local_positions(seq_len);
  n_ = seqs_.size * int64_t(positions_.size());
  const int64_t h = c.hidden_size, L = c.num_hidden_layers;
  x_in_.prepare(L + 1, n_ * h);
  x_mid_.prepare(L, n_ * h);
  rstd_in_.clear();
  rstd_mid_.clear();
  for (int64_t l = 0; l <= L; ++l) {
    rstd_in_.emplace_back(n_, Mem::activations);
    if (l < L) rstd_mid_.emplace_back(n_, Mem::activations);
  }
  u_ = Buffer<T>(n_ * h, Mem::workspace);
  y_ = Buffer<T>(n_ * h, Mem::workspace);
  du_ = Buffer<T>(n_ * h, Mem::workspace);
  dx_ = Buffer<T>(n_ * h, Mem::workspace);
  s_.prepare(p_, batch, seq_len);
}

template <class T>
void Transformer<T>::take_local(const int32_t* full, std::vector<int32_t>& local) const {
  local.resize(size_t(n_));
  const int64_t per = int64_t(positions_.size());
  for (int64_t b = 0; b < seqs_.size; ++b)
    for (int64_t i = 0; i < per; ++i)
      local[size_t(b * per + i)] = full[(seqs_.begin + b) * seq_len_ + positions_[size_t(i)]];
}

template <class T>
void Transformer<T>::embed_and_layers(const int32_t* tokens) {
  const ModelConfig& c = p_.config();
  // Every rank holds the whole batch, so a bad id is found on every rank (a usage error, not a hang).
  for (int64_t i = 0; i < batch_ * seq_len_; ++i)
    TSP_REQUIRE(tokens[i] >= 0 && tokens[i] < c.vocab_size,
                "token id {} (at index {}) is outside the vocabulary [0, {})", tokens[i], i, c.vocab_size);
  const int64_t h = c.hidden_size, L = c.num_hidden_layers, nh = n_ * h;
  take_local(tokens, tokens_);
  {
    TraceSpan span("embed.fwd", "compute");
    s_.embed_forward(p_, tokens_.data(), x_in_.work(0));
  }
  // x_in_.work(l) holds layer l's input (computed by the previous layer, in place under bf16: one working
  // buffer); each slot is saved before the norm reads it.
  for (int64_t l = 0; l < L; ++l) {
    LayerWeights<T> w = p_.layer(int(l));
    T* xi = x_in_.work(l);
    x_in_.save(l);
    rmsnorm_forward(u_.data(), rstd_in_[l].data(), xi, w.attn_norm, n_, h, c.rms_norm_eps);
    s_.attention_forward(p_, int(l), u_.data(), y_.data());
    T *xm = x_mid_.work(l), *y = y_.data();
    for (int64_t i = 0; i < nh; ++i) xm[i] = xi[i] + y[i];
    x_mid_.save(l);
    rmsnorm_forward(u_.data(), rstd_mid_[l].data(), xm, w.mlp_norm, n_, h, c.rms_norm_eps);
    s_.mlp_forward(p_, int(l), u_.data(), y_.data());
    T* xo = x_in_.work(l + 1);
    for (int64_t i = 0; i < nh; ++i) xo[i] = xm[i] + y[i];
  }
  T* x_last = x_in_.work(L);
  x_in_.save(L);
  rmsnorm_forward(u_.data(), rstd_in_[L].data(), x_last, p_.final_norm(), n_, h, c.rms_norm_eps);
}

template <class T>
StepResult Transformer<T>::forward(const int32_t* tokens, const int32_t* targets, int64_t batch,
                                   int64_t seq_len, bool want_accuracy) {
  s_.set_phase("forward");
  p_.sync_bf16();
  set_shape(batch, seq_len);
  embed_and_layers(tokens);
  take_local(targets, targets_);
  std::vector<int32_t> argmax(want_accuracy ? size_t(n_) : 0);
  double sums[3] = {0, 0, 0};
  {
    TraceSpan span("head.fwd", "compute");
    sums[0] = s_.head_forward(p_, u_.data(), targets_.data(), want_accuracy ? argmax.data() : nullptr);
  }
  for (int64_t i = 0; i < n_; ++i) {
    if (targets_[size_t(i)] == kIgnoreIndex) continue;
    sums[1] += 1;
    if (want_accuracy && argmax[size_t(i)] == targets_[size_t(i)]) sums[2] += 1;
  }
  s_.sum_over_tokens(sums, 3, "loss.allreduce");
  count_ = sums[1];
  StepResult r;
  r.targets = int64_t(sums[1]);
  r.correct = int64_t(sums[2]);
  r.loss = count_ > 0 ? sums[0] / count_ : 0.0;
  return r;
}

template <class T>
void Transformer<T>::backward() {
  TSP_CHECK(n_ > 0, "backward() called before forward()");
  s_.set_phase("backward");
  const ModelConfig& c = p_.config();
  const int64_t h = c.hidden_size, L = c.num_hidden_layers;
  const T scale = count_ > 0 ? T(1.0 / count_) : T(0);
  // The final norm's output is recomputed from its saved input rather than kept.
  const T* x_last = x_in_.load(L);
  rmsnorm_forward(u_.data(), rstd_in_[L].data(), x_last, p_.final_norm(), n_, h, c.rms_norm_eps);
  du_.zero();
  {
    TraceSpan span("head.bwd", "compute");
    s_.head_backward(p_, u_.data(), targets_.data(), scale, du_.data());
  }
  dx_.zero();
  rmsnorm_backward(dx_.data(), p_.final_norm_grad(), du_.data(), x_last, p_.final_norm(), rstd_in_[L].data(),
                   n_, h);
  for (int64_t l = L - 1; l >= 0; --l) {
    LayerWeights<T> w = p_.layer(int(l));
    LayerWeights<T> g = p_.layer_grad(int(l));
    // dx holds d(loss)/d(layer output); the residual passes it through and each norm branch adds to it.
    const T* xm = x_mid_.load(l);
    rmsnorm_forward(u_.data(), rstd_mid_[l].data(), xm, w.mlp_norm, n_, h, c.rms_norm_eps);
    du_.zero();
    s_.mlp_backward(p_, int(l), u_.data(), dx_.data(), du_.data());
    rmsnorm_backward(dx_.data(), g.mlp_norm, du_.data(), xm, w.mlp_norm, rstd_mid_[l].data(), n_, h);
    const T* xi = x_in_.load(l);
    rmsnorm_forward(u_.data(), rstd_in_[l].data(), xi, w.attn_norm, n_, h, c.rms_norm_eps);
    du_.zero();
    s_.attention_backward(p_, int(l), u_.data(), dx_.data(), du_.data());
    rmsnorm_backward(dx_.data(), g.attn_norm, du_.data(), xi, w.attn_norm, rstd_in_[l].data(), n_, h);
  }
  {
    TraceSpan span("embed.bwd", "compute");
    s_.embed_backward(p_, tokens_.data(), dx_.data());
  }
  s_.reduce_replicated_grads(p_);
}

template <class T>
std::vector<T> Transformer<T>::logits(const int32_t* tokens, int64_t batch, int64_t seq_len) {
  s_.set_phase("forward");
  p_.sync_bf16();
  set_shape(batch, seq_len);
  embed_and_layers(tokens);
  const int64_t V = p_.config().vocab_size;
  Buffer<T> local(n_ * V, Mem::workspace);
  s_.head_logits(p_, u_.data(), local.data());
  std::vector<T> full(size_t(batch * seq_len * V));
  s_.gather_token_rows(local.data(), full.data(), V);
  return full;
}

template class Transformer<float>;
template class Transformer<double>;

}  // namespace tsp

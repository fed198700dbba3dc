#include "parallel/tsp/vocab_ring.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"

namespace tsp {

template <class T>
void TspVocabRing<T>::prepare(const TspLayout& L, const ModelParams<T>& p, bool training, bool bf16_wire) {
  TSP_CHECK(!bf16_wire || (std::is_same_v<T, float>), "a bf16 weight wire narrows float weights only");
  L_ = &L;
  bf16_wire_ = bf16_wire;
  hidden_ = p.config().hidden_size;
  vocab_ = p.config().vocab_size;
  shard_rows_ = p.spec().vocab.size;
  part_numel_ = shard_rows_ * hidden_;
  for (auto& b : ring_) b = Buffer<T>(bf16_wire ? 0 : part_numel_, Mem::communication);
  for (auto& b : ring16_) b = Buffer<uint16_t>(bf16_wire ? part_numel_ : 0, Mem::communication);
  const int64_t bwd = training ? 1 : 0, n = bwd * L.n;
  // The accumulators travel in T or, under --grad-reduce-dtype bf16, in bf16 (ring.h).
  grad16_ = training && bf16_grad_reduce<T>();
  for (auto& b : acc_) b = Buffer<T>(grad16_ ? 0 : bwd * part_numel_, Mem::communication);
  for (auto& b : acc16_) b = Buffer<uint16_t>(grad16_ ? part_numel_ : 0, Mem::communication);
  lse_ = Buffer<T>(n, Mem::activations);
  grad_partial_ = Buffer<T>(bwd * part_numel_, Mem::workspace);
  logits_ = Buffer<T>(n * shard_rows_, Mem::workspace);
  dlogits_ = Buffer<T>(n * shard_rows_, Mem::workspace);
  for (Buffer<T>* b : {&run_max_, &run_sum_, &target_logit_, &loss_}) *b = Buffer<T>(n, Mem::workspace);
}

template <class T>
int64_t TspVocabRing<T>::valid_rows(int s) const {
  return std::clamp<int64_t>(vocab_ - s * shard_rows_, 0, shard_rows_);
}

template <class T>
template <class F>
void TspVocabRing<T>::with_ring(F&& f) {
  with_pair(bf16_wire_, ring_, ring16_, f);
}

template <class T>
template <class F>
void TspVocabRing<T>::with_accumulators(F&& f) {
  with_pair(grad16_, acc_, acc16_, f);
}

template <class T>
void TspVocabRing<T>::embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) {
  const TspLayout& L = *L_;
  // Only this rank sees its tokens, so a bad id is a failure of this rank (it aborts the job) rather than a
  // usage error that every rank would report.
  for (int64_t i = 0; i < L.n; ++i)
    TSP_CHECK(tokens[i] >= 0 && tokens[i] < vocab_, "token id {} is outside the vocabulary [0, {})",
              tokens[i], vocab_);
  std::memset(x, 0, sizeof(T) * size_t(L.n * hidden_));
  with_ring([&](auto* buf0, auto* buf1) {
    weight_ring(L, "vocab.ring", p.value(p.vocab_block()).data() + p.embed_offset(), part_numel_, buf0, buf1,
                [&](const auto* w, int s) {
                  TraceSpan span("embed.fwd.shard", "compute");
                  kernels::embedding_forward(x, w, tokens, L.n, hidden_, s * shard_rows_, shard_rows_);
                });
  });
}

template <class T>
void TspVocabRing<T>::embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx) {
  const TspLayout& L = *L_;
  // The lookup's gradient needs no weights: only the accumulators travel.
  with_accumulators([&](auto* acc0, auto* acc1) {
    weight_ring_with_grad(
        L, "vocab.ring", "vocab.grad_ring", static_cast<const T*>(nullptr), 0, static_cast<T*>(nullptr),
        static_cast<T*>(nullptr), p.grad(p.vocab_block()).data() + p.embed_offset(), part_numel_, acc0, acc1,
        grad_partial_.data(), [&](const T*, T* dw, int s) {
          TraceSpan span("embed.bwd.shard", "compute");
          kernels::embedding_backward(dw, dx, tokens, L.n, hidden_, s * shard_rows_, shard_rows_);
        });
  });
}

template <class T>
double TspVocabRing<T>::head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) {
  const TspLayout& L = *L_;
  kernels::online_lse_init(run_max_.data(), run_sum_.data(), target_logit_.data(), argmax, L.n);
  OnlineLse<T> st{run_max_.data(), run_sum_.data(), target_logit_.data(), argmax};
  with_ring([&](auto* buf0, auto* buf1) {
    weight_ring(L, "vocab.ring", p.value(p.vocab_block()).data() + p.lm_head_offset(), part_numel_, buf0,
                buf1, [&](const auto* w, int s) {
                  TraceSpan span("head.fwd.shard", "compute");
                  head_shard_fold(st, logits_.data(), u, kernels::WeightRef<T>(w), targets, L.n, hidden_,
                                  s * shard_rows_, valid_rows(s));
                });
  });
  kernels::online_lse_finish(lse_.data(), loss_.data(), run_max_.data(), run_sum_.data(),
                             target_logit_.data(), targets, L.n, kernels::kIgnoreIndex);
  double sum = 0;
  for (int64_t i = 0; i < L.n; ++i) sum += double(loss_[i]);
  return sum;
}

template <class T>
void TspVocabRing<T>::head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du) {
  const TspLayout& L = *L_;
  // With tied embeddings lm_head_offset() == embed_offset() == 0: the head's gradient lands in the
  // embedding's rows, to which embed_backward adds the lookup's gradient later.
  with_ring([&](auto* buf0, auto* buf1) {
    with_accumulators([&](auto* acc0, auto* acc1) {
      weight_ring_with_grad(
          L, "vocab.ring", "vocab.grad_ring", p.value(p.vocab_block()).data() + p.lm_head_offset(),
          part_numel_, buf0, buf1, p.grad(p.vocab_block()).data() + p.lm_head_offset(), part_numel_, acc0,
          acc1, grad_partial_.data(), [&](const auto* w, T* dw, int s) {
            TraceSpan span("head.bwd.shard", "compute");
            head_shard_backward(du, dw, logits_.data(), dlogits_.data(), u, kernels::WeightRef<T>(w),
                                lse_.data(), targets, L.n, hidden_, s * shard_rows_, valid_rows(s), scale);
          });
    });
  });
}

template <class T>
void TspVocabRing<T>::head_logits(ModelParams<T>& p, const T* u, T* logits) {
  const TspLayout& L = *L_;
  with_ring([&](auto* buf0, auto* buf1) {
    weight_ring(L, "vocab.ring", p.value(p.vocab_block()).data() + p.lm_head_offset(), part_numel_, buf0,
                buf1, [&](const auto* w, int s) {
                  TraceSpan span("head.logits.shard", "compute");
                  const int64_t v = valid_rows(s);
                  // Shard s fills columns [s · rows, s · rows + v) of the [n, V] logits.
                  if (v > 0)
                    kernels::linear_forward(logits + s * shard_rows_, u, kernels::WeightRef<T>(w), L.n,
                                            hidden_, v, false, vocab_);
                });
  });
}

template class TspVocabRing<float>;
template class TspVocabRing<double>;

}  // namespace tsp

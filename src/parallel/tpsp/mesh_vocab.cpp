#include "parallel/tpsp/mesh_vocab.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/check.h"
#include "core/trace.h"
#include "kernels/cross_entropy.h"
#include "kernels/embedding.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"

namespace tsp {

template <class T>
void MeshVocab<T>::prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training) {
  L_ = &L;
  tp_ = &tp;
  hidden_ = p.config().hidden_size;
  vocab_ = p.config().vocab_size;
  shard_rows_ = p.spec().vocab.size;
  row_begin_ = p.spec().vocab.begin;
  const int64_t n = training ? L.n : 0;
  lse_ = Buffer<T>(n, Mem::activations);
  states_ = Buffer<T>(L.tp_size > 1 ? L.tp_size * n * 4 : 0, Mem::communication);
  for (Buffer<T>* b : {&run_max_, &run_sum_, &target_logit_, &loss_}) *b = Buffer<T>(n, Mem::workspace);
  logits_ = Buffer<T>(n * shard_rows_, Mem::workspace);
  dlogits_ = Buffer<T>(n * shard_rows_, Mem::workspace);
  argmax_.assign(size_t(n), -1);
}

template <class T>
int64_t MeshVocab<T>::valid_rows(int r) const {
  return std::clamp<int64_t>(vocab_ - r * shard_rows_, 0, shard_rows_);
}

template <class T>
void MeshVocab<T>::embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x) {
  const MeshLayout& L = *L_;
  tp_->gather_ids("tp.embed_ids_allgather", tokens, tokens_);
  for (int64_t i = 0; i < L.n; ++i)
    TSP_CHECK(tokens_[size_t(i)] >= 0 && tokens_[size_t(i)] < vocab_,
              "token id {} is outside the vocabulary [0, {})", tokens_[size_t(i)], vocab_);
  T* xg = tp_->partial(x);
  std::memset(xg, 0, sizeof(T) * size_t(L.n * hidden_));
  {
    TraceSpan span("embed.fwd", "compute");
    kernels::embedding_forward(xg, p.value(p.vocab_block()).data() + p.embed_offset(), tokens_.data(), L.n,
                               hidden_, row_begin_, shard_rows_);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.embed_reducescatter" : "tp.embed_allreduce", x, false);
}

template <class T>
void MeshVocab<T>::embed_backward(ModelParams<T>& p, const int32_t*, const T* dx) {
  const MeshLayout& L = *L_;
  // The group's ids were kept by embed_forward; the lookup's gradient only touches the rows held here.
  const T* dxg = tp_->gather_output_grad("tp.embed_grad_allgather", dx);
  TraceSpan span("embed.bwd", "compute");
  kernels::embedding_backward(p.grad(p.vocab_block()).data() + p.embed_offset(), dxg, tokens_.data(), L.n,
                              hidden_, row_begin_, shard_rows_);
}

template <class T>
void MeshVocab<T>::combine_states() {
  const MeshLayout& L = *L_;
  const int64_t n = L.n;
  T* mine = states_.data() + L.tp_rank * n * 4;
  for (int64_t i = 0; i < n; ++i) {
    mine[4 * i] = run_max_[i];
    mine[4 * i + 1] = run_sum_[i];
    mine[4 * i + 2] = target_logit_[i];
    mine[4 * i + 3] = T(argmax_[size_t(i)]);  // exact: vocabulary ids are far below 2^24
  }
  L.tp->all_gather("tp.ce_allgather", mine, states_.data(), n * 4);
  TraceSpan span("head.lse_combine", "compute");
  for (int64_t i = 0; i < n; ++i) {
    T m = -std::numeric_limits<T>::infinity();
    int32_t arg = -1;
    // Rank order is column order: the first rank reaching the maximum has the lowest column.
    for (int r = 0; r < L.tp_size; ++r) {
      const T* st = states_.data() + (r * n + i) * 4;
      if (st[0] > m) {
        m = st[0];
        arg = int32_t(st[3]);
      }
    }
    T sum = 0, target = 0;
    for (int r = 0; r < L.tp_size; ++r) {
      const T* st = states_.data() + (r * n + i) * 4;
      if (st[1] > T(0)) sum += st[1] * std::exp(st[0] - m);
      target += st[2];  // only the rank holding the target's row has a non-zero target logit
    }
    run_max_[i] = m;
    run_sum_[i] = sum;
    target_logit_[i] = target;
    argmax_[size_t(i)] = arg;
  }
}

template <class T>
double MeshVocab<T>::head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax) {
  const MeshLayout& L = *L_;
  const T* ug = tp_->gather_input("tp.head_in_allgather", u);
  tp_->gather_ids("tp.head_targets_allgather", targets, targets_);
  kernels::online_lse_init(run_max_.data(), run_sum_.data(), target_logit_.data(), argmax_.data(), L.n);
  OnlineLse<T> st{run_max_.data(), run_sum_.data(), target_logit_.data(), argmax_.data()};
  {
    TraceSpan span("head.fwd", "compute");
    head_shard_fold(st, logits_.data(), ug, p.value(p.vocab_block()).data() + p.lm_head_offset(),
                    targets_.data(), L.n, hidden_, row_begin_, valid_rows(L.tp_rank));
  }
  if (L.tp_size > 1) combine_states();
  kernels::online_lse_finish(lse_.data(), loss_.data(), run_max_.data(), run_sum_.data(),
                             target_logit_.data(), targets_.data(), L.n, kernels::kIgnoreIndex);
  // Every rank of the TP group now knows the loss of all the group's tokens; it reports its local ones, so
  // that summing over the ranks that hold different tokens counts every token once.
  double sum = 0;
  for (int64_t i = 0; i < L.n_local; ++i) {
    const int64_t row = L.group_row(i);
    sum += double(loss_[row]);
    if (argmax) argmax[i] = argmax_[size_t(row)];
  }
  return sum;
}

template <class T>
void MeshVocab<T>::head_backward(ModelParams<T>& p, const T* u, const int32_t*, T scale, T* du) {
  const MeshLayout& L = *L_;
  const T* ug = tp_->gather_input("tp.head_in_allgather", u);
  T* dug = tp_->partial(du);
  {
    TraceSpan span("head.bwd", "compute");
    // With tied embeddings lm_head_offset() == embed_offset(): embed_backward adds to the same rows later.
    head_shard_backward(dug, p.grad(p.vocab_block()).data() + p.lm_head_offset(), logits_.data(),
                        dlogits_.data(), ug, p.value(p.vocab_block()).data() + p.lm_head_offset(),
                        lse_.data(), targets_.data(), L.n, hidden_, row_begin_, valid_rows(L.tp_rank), scale);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.head_in_grad_reducescatter" : "tp.head_in_grad_allreduce", du,
                      true);
}

template <class T>
void MeshVocab<T>::head_logits(ModelParams<T>& p, const T* u, T* logits) {
  const MeshLayout& L = *L_;
  const T* ug = tp_->gather_input("tp.head_in_allgather", u);
  const T* w = p.value(p.vocab_block()).data() + p.lm_head_offset();
  const int64_t mine = valid_rows(L.tp_rank);
  if (L.tp_size == 1) {
    kernels::linear_forward(logits, ug, w, L.n, hidden_, mine, false, vocab_);
    return;
  }
  // Eval only: the columns of every shard are all-gathered over TP (a transient buffer).
  TraceSpan span("head.logits", "compute");
  const int64_t block = L.n * shard_rows_;
  Buffer<T> all(L.tp_size * block, Mem::communication);
  T* own = all.data() + L.tp_rank * block;
  if (mine > 0) kernels::linear_forward(own, ug, w, L.n, hidden_, mine, false, shard_rows_);
  L.tp->all_gather("tp.logits_allgather", own, all.data(), block);
  for (int64_t i = 0; i < L.n_local; ++i) {
    const int64_t row = L.group_row(i);
    for (int r = 0; r < L.tp_size; ++r)
      std::copy_n(all.data() + r * block + row * shard_rows_, valid_rows(r),
                  logits + i * vocab_ + r * shard_rows_);
  }
}

template class MeshVocab<float>;
template class MeshVocab<double>;

}  // namespace tsp

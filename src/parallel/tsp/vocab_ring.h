// TSP embedding, LM head and loss (tsp-spec.md §8): vocabulary shards ride the weight ring. The embedding
// picks, at each step, the rows of my tokens that fall in the shard held; the LM head folds each shard's
// logits into an online log-sum-exp, so [n, V] logits never exist. Backward: the same ring with travelling
// gradient accumulators. Each pass moves only the part of the vocabulary block it needs (embedding or head;
// with tied embeddings they are the same rows). Sent and received per rank, in parts of ceil(V/D)·h
// elements: embed_forward, head_forward, head_logits D-1 each (vocab.ring); head_backward D-1 (vocab.ring)
// and D-1 accumulators (vocab.grad_ring); embed_backward D-1 accumulators only (vocab.grad_ring).
#pragma once

#include <cstdint>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/tsp/ring.h"

namespace tsp {

template <class T>
class TspVocabRing {
 public:
  // training = false (prefill): only the embedding ring; no LM-head, loss or gradient buffers.
  // bf16_wire (float only, under bf16 products): the vocabulary parts ride the ring as bf16 (ring.h) — the
  // embedding too, whose lookup then widens bf16 rows (as a bf16 model's does); accumulators stay in T.
  void prepare(const TspLayout& L, const ModelParams<T>& p, bool training = true, bool bf16_wire = false);
  void embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x);
  void embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx);
  double head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax);
  void head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du);
  void head_logits(ModelParams<T>& p, const T* u, T* logits);

 private:
  // Real vocabulary rows of shard s (padding rows past vocab_size never enter the softmax).
  int64_t valid_rows(int s) const;
  // Calls f(buf0, buf1) with the ring's buffers: bf16 ones on a bf16 wire, else those in T.
  template <class F>
  void with_ring(F&& f);
  // Calls f(acc0, acc1) with the gradient accumulators: bf16 ones under --grad-reduce-dtype bf16, else in T.
  template <class F>
  void with_accumulators(F&& f);

  const TspLayout* L_ = nullptr;
  int64_t hidden_ = 0, vocab_ = 0;
  int64_t shard_rows_ = 0;  // padded vocabulary / D
  int64_t part_numel_ = 0;  // one part (embedding or LM head) of a vocabulary shard: shard_rows_ · h
  // Communication: the ring's two buffers and the two travelling gradient accumulators (one part each).
  Buffer<T> ring_[2], acc_[2];
  Buffer<uint16_t> ring16_[2];  // the ring of a bf16 wire (instead of ring_)
  bool bf16_wire_ = false;
  Buffer<uint16_t> acc16_[2];  // the accumulators under --grad-reduce-dtype bf16 (instead of acc_)
  bool grad16_ = false;
  Buffer<T> lse_;  // activations: the final log-sum-exp of my tokens
  // Workspace: this step's gradient contribution, logits of one shard, the online softmax state.
  Buffer<T> grad_partial_, logits_, dlogits_, run_max_, run_sum_, target_logit_, loss_;
};

}  // namespace tsp

// The decoder-only Llama transformer, written once for every layout: the residual stream of the local tokens,
// the RMSNorms, and the order of the blocks; the Strategy supplies the blocks (parallel/strategy.h).
//
// Saved for the backward, per layer: the two norm inputs (the residual stream before attention and before the
// MLP) and their inverse RMS, i.e. O(N·h) per layer for the N tokens held here; everything else a block needs
// is saved (or recomputed) by the strategy. Under the bf16 policy (core/precision.h) the residual stream is
// rounded to bf16 where it is saved, and the model computes with the parameters' bf16 copy, refreshed from
// the fp32 master at every forward (ModelParams::sync_bf16).
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/stash.h"
#include "parallel/strategy.h"

namespace tsp {

struct StepResult {
  double loss = 0;      // mean next-token loss over every target of the batch (all ranks)
  int64_t targets = 0;  // number of targets (not ignore_index) in the batch
  int64_t correct = 0;  // targets whose argmax prediction is right (when requested)
};

template <class T>
class Transformer {
 public:
  Transformer(ModelParams<T>& params, Strategy<T>& strategy);

  // tokens, targets: the whole batch [batch, seq_len] (the same on every rank); each rank takes its tokens
  // (those of its replica's sequences, Strategy::batch_range, at its positions).
  StepResult forward(const int32_t* tokens, const int32_t* targets, int64_t batch, int64_t seq_len,
                     bool want_accuracy = false);
  // Gradients of the last forward's mean loss, accumulated into params' gradients (zero them first).
  void backward();
  // Logits [batch * seq_len, vocab_size] in original token order, on every rank (eval / check only).
  std::vector<T> logits(const int32_t* tokens, int64_t batch, int64_t seq_len);

  int64_t local_tokens() const { return n_; }

 private:
  void set_shape(int64_t batch, int64_t seq_len);
  void take_local(const int32_t* full, std::vector<int32_t>& local) const;
  void embed_and_layers(const int32_t* tokens);

  ModelParams<T>& p_;
  Strategy<T>& s_;
  int64_t batch_ = 0, seq_len_ = 0, n_ = 0;
  Range seqs_;  // the sequences of the batch this rank's replica processes
  std::vector<int64_t> positions_;
  std::vector<int32_t> tokens_, targets_;
  double count_ = 0;
  // Saved: the residual stream at every norm input (slot l of x_in_: layer l's input, slot L: the final
  // norm's; x_mid_: before each MLP), in bf16 under the bf16 policy, and the norms' inverse RMS (fp32).
  Stash<T> x_in_, x_mid_;
  std::vector<Buffer<T>> rstd_in_, rstd_mid_;
  // Scratch reused by every layer.
  Buffer<T> u_, y_, du_, dx_;
};

}  // namespace tsp

// Vocabulary-parallel embedding and LM head on the mesh (docs/layouts.md): TP rank t holds vocabulary rows
// [t·V_p/T, (t+1)·V_p/T) of the embedding and the head (V_p: V padded to a multiple of T; padding rows never
// enter the softmax). The embedding looks up the rows it holds for the group's tokens, a partial sum over TP.
// The loss never materialises full logits: each rank folds the logits of its rows into an online
// log-sum-exp state per token (max, sum of exp, target logit, argmax); the states are all-gathered over TP
// and folded in rank order (ties go to the lower column, as in the single-device model).
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "model/params.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/tpsp/tp_tokens.h"

namespace tsp {

template <class T>
class MeshVocab {
 public:
  // training = false (prefill): only the embedding is used; no LM-head or loss buffers.
  void prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training = true);
  void embed_forward(ModelParams<T>& p, const int32_t* tokens, T* x);
  void embed_backward(ModelParams<T>& p, const int32_t* tokens, const T* dx);
  double head_forward(ModelParams<T>& p, const T* u, const int32_t* targets, int32_t* argmax);
  void head_backward(ModelParams<T>& p, const T* u, const int32_t* targets, T scale, T* du);
  void head_logits(ModelParams<T>& p, const T* u, T* logits);

 private:
  // Folds the TP ranks' online log-sum-exp states of the group tokens into run_max_, run_sum_,
  // target_logit_ and argmax_.
  void combine_states();
  int64_t valid_rows(int r) const;  // rows of TP rank r's shard inside the real vocabulary

  const MeshLayout* L_ = nullptr;
  TpTokens<T>* tp_ = nullptr;
  int64_t hidden_ = 0, vocab_ = 0, shard_rows_ = 0, row_begin_ = 0;
  Buffer<T> lse_;     // activations [n]: the loss' log-sum-exp of the group tokens
  Buffer<T> states_;  // communication (T > 1): [T, n, 4] online states
  Buffer<T> run_max_, run_sum_, target_logit_, loss_, logits_, dlogits_;  // workspace
  std::vector<int32_t> argmax_;                                           // [n]
  std::vector<int32_t> tokens_, targets_;  // the group's token ids and targets (kept for the backward)
};

}  // namespace tsp

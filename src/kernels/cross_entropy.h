// Cross-entropy over logits that may arrive in vocabulary shards: an online (running max, running sum-exp)
// log-sum-exp folds shard after shard, so full [n, V] logits never need to exist. A target equal to
// ignore_index contributes nothing (no loss, no gradient, not counted).
#pragma once

#include <cstdint>

namespace tsp::kernels {

inline constexpr int32_t kIgnoreIndex = -100;

// Start state for the online log-sum-exp: run_max = -inf, run_sum = 0, target_logit = 0, argmax = -1.
template <class T>
void online_lse_init(T* run_max, T* run_sum, T* target_logit, int32_t* argmax, int64_t n);

// Folds logits[n, v] of vocabulary columns [v_begin, v_begin + v) into the running state: updates
// run_max/run_sum (rescaling the old sum), picks target_logit[i] if targets[i] falls in the shard, and keeps
// argmax[i] (global column of the largest logit so far; ties go to the lower column). argmax may be null.
template <class T>
void online_lse_fold(T* run_max, T* run_sum, T* target_logit, int32_t* argmax, const T* logits,
                     const int32_t* targets, int64_t n, int64_t v_begin, int64_t v);

// Finishes: lse[i] = run_max + log(run_sum); loss[i] = lse[i] - target_logit[i] (0 for ignored targets).
template <class T>
void online_lse_finish(T* lse, T* loss, const T* run_max, const T* run_sum, const T* target_logit,
                       const int32_t* targets, int64_t n, int32_t ignore_index);

// Gradient of scale * sum_i loss_i w.r.t. a shard of logits [n, v] (columns [v_begin, v_begin + v)):
//   dlogits[i, j] += scale * (exp(logits[i, j] - lse[i]) - [targets[i] == v_begin + j]), ignored rows
//   skipped.
template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, int64_t n,
                            int64_t v_begin, int64_t v, int32_t ignore_index, T scale);

// Convenience for whole-vocabulary logits: init + one fold + finish. argmax may be null.
template <class T>
void cross_entropy_forward(T* loss, T* lse, int32_t* argmax, const T* logits, const int32_t* targets,
                           int64_t n, int64_t v, int32_t ignore_index);

}  // namespace tsp::kernels

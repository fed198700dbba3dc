#include "kernels/cross_entropy.h"

#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"

namespace tsp::kernels {

namespace {
constexpr int64_t kParallelElements = int64_t(1) << 16;
}  // namespace

template <class T>
void online_lse_init(T* run_max, T* run_sum, T* target_logit, int32_t* argmax, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    run_max[i] = -std::numeric_limits<T>::infinity();
    run_sum[i] = 0;
    target_logit[i] = 0;
    if (argmax) argmax[i] = -1;
  }
}

template <class T>
void online_lse_fold(T* run_max, T* run_sum, T* target_logit, int32_t* argmax, const T* logits,
                     const int32_t* targets, int64_t n, int64_t v_begin, int64_t v) {
  TSP_CHECK(n >= 0 && v >= 0 && v_begin >= 0, "online_lse_fold: bad shard n={} columns [{}, +{})", n, v_begin,
            v);
  TSP_CHECK(v_begin + v <= std::numeric_limits<int32_t>::max(),
            "online_lse_fold: column {} exceeds int32 token ids", v_begin + v);
  if (v == 0) return;
#pragma omp parallel for schedule(static) if (n * v > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    const T* li = logits + i * v;
    T shard_max = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : shard_max)
    for (int64_t j = 0; j < v; ++j) shard_max = li[j] > shard_max ? li[j] : shard_max;

    if (argmax) {
      int64_t first = 0;  // lowest column holding the shard maximum
      while (first + 1 < v && li[first] != shard_max) ++first;
      const int64_t col = v_begin + first;
      // Shards may be folded in any column order, so a tie is settled by column, not by arrival.
      if (argmax[i] < 0 || shard_max > run_max[i] || (shard_max == run_max[i] && col < argmax[i]))
        argmax[i] = int32_t(col);
    }

    const T new_max = shard_max > run_max[i] ? shard_max : run_max[i];
    // With every logit so far at -inf the sum stays 0; exp(-inf - -inf) would poison it with NaN.
    if (new_max != -std::numeric_limits<T>::infinity()) {
      // Partial sums are kept in double: a float sum over a 100k-column shard would lose the small terms.
      double s = 0;
#pragma omp simd reduction(+ : s)
      for (int64_t j = 0; j < v; ++j) s += double(std::exp(li[j] - new_max));
      run_sum[i] = T(double(run_sum[i]) * double(std::exp(run_max[i] - new_max)) + s);
      run_max[i] = new_max;
    }

    const int64_t t = targets[i];
    if (t >= v_begin && t < v_begin + v) target_logit[i] = li[t - v_begin];
  }
}

template <class T>
void online_lse_finish(T* lse, T* loss, const T* run_max, const T* run_sum, const T* target_logit,
                       const int32_t* targets, int64_t n, int32_t ignore_index) {
  for (int64_t i = 0; i < n; ++i) {
    lse[i] = run_max[i] + std::log(run_sum[i]);
    loss[i] = targets[i] == ignore_index ? T(0) : lse[i] - target_logit[i];
  }
}

template <class T>
void cross_entropy_backward(T* dlogits, const T* logits, const T* lse, const int32_t* targets, int64_t n,
                            int64_t v_begin, int64_t v, int32_t ignore_index, T scale) {
  TSP_CHECK(n >= 0 && v >= 0 && v_begin >= 0, "cross_entropy_backward: bad shard n={} columns [{}, +{})", n,
            v_begin, v);
#pragma omp parallel for schedule(static) if (n * v > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] == ignore_index) continue;
    const T* li = logits + i * v;
    T* di = dlogits + i * v;
    const T m = lse[i];
    for (int64_t j = 0; j < v; ++j) di[j] += scale * std::exp(li[j] - m);
    const int64_t t = targets[i];
    if (t >= v_begin && t < v_begin + v) di[t - v_begin] -= scale;
  }
}

template <class T>
void cross_entropy_forward(T* loss, T* lse, int32_t* argmax, const T* logits, const int32_t* targets,
                           int64_t n, int64_t v, int32_t ignore_index) {
  for (int64_t i = 0; i < n; ++i)
    TSP_CHECK(targets[i] == ignore_index || (targets[i] >= 0 && targets[i] < v),
              "cross_entropy_forward: target {} of row {} is outside the vocabulary [0, {})", targets[i], i,
              v);
  std::vector<T> run_max(n), run_sum(n), target_logit(n);
  online_lse_init(run_max.data(), run_sum.data(), target_logit.data(), argmax, n);
  online_lse_fold(run_max.data(), run_sum.data(), target_logit.data(), argmax, logits, targets, n, 0, v);
  online_lse_finish(lse, loss, run_max.data(), run_sum.data(), target_logit.data(), targets, n, ignore_index);
}

#define TSP_INSTANTIATE_CROSS_ENTROPY(T)                                                                     \
  template void online_lse_init<T>(T*, T*, T*, int32_t*, int64_t);                                           \
  template void online_lse_fold<T>(T*, T*, T*, int32_t*, const T*, const int32_t*, int64_t, int64_t,         \
                                   int64_t);                                                                 \
  template void online_lse_finish<T>(T*, T*, const T*, const T*, const T*, const int32_t*, int64_t,          \
                                     int32_t);                                                               \
  template void cross_entropy_backward<T>(T*, const T*, const T*, const int32_t*, int64_t, int64_t, int64_t, \
                                          int32_t, T);                                                       \
  template void cross_entropy_forward<T>(T*, T*, int32_t*, const T*, const int32_t*, int64_t, int64_t,       \
                                         int32_t);

TSP_INSTANTIATE_CROSS_ENTROPY(float)
TSP_INSTANTIATE_CROSS_ENTROPY(double)

}  // namespace tsp::kernels

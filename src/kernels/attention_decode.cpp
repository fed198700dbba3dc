// One query per sequence reads every visible cache slot once: the kernel is bound by the cache's memory
// traffic, not by arithmetic, so it is written as plain loops over the slots (a BLAS call per [1 x slots]
// product would cost more in call overhead than the product itself). One task per (query row, KV head): the
// query heads of a GQA group share the task, so each cached key and value is read once per group. Tasks are
// independent, so the result does not depend on the thread count.
#include "kernels/attention_decode.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "kernels/softmax_exp.h"

namespace tsp::kernels {

namespace {

template <class T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

// One query row and one KV head: the `group` query heads q[group, d] against the visible slots.
template <class T>
void decode_task(T* out, T* lse, const T* q, const T* k, const T* v, int64_t q_pos, int64_t n_slots,
                 const int64_t* slot_pos, int64_t group, int64_t d, int64_t row_stride, T scale,
                 std::vector<T>& scores) {
  scores.resize(size_t(group * n_slots));
  for (int64_t h = 0; h < group; ++h) {
    T* sc = scores.data() + h * n_slots;
    const T* qh = q + h * d;
    for (int64_t s = 0; s < n_slots; ++s) {
      const int64_t pos = slot_pos ? slot_pos[s] : s;
      if (pos > q_pos) {
        sc[s] = kNegInf<T>;
        continue;
      }
      const T* ks = k + s * row_stride;
      T dot = T(0);
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += qh[j] * ks[j];
      sc[s] = dot * scale;
    }
  }
  for (int64_t h = 0; h < group; ++h) {
    T* sc = scores.data() + h * n_slots;
    T* oh = out + h * d;
    T m = kNegInf<T>;
    for (int64_t s = 0; s < n_slots; ++s) m = std::max(m, sc[s]);
    std::fill(oh, oh + d, T(0));
    if (m == kNegInf<T>) {
      lse[h] = kNegInf<T>;
      continue;
    }
    T sum = T(0);
    for (int64_t s = 0; s < n_slots; ++s) {
      if (sc[s] == kNegInf<T>) continue;
      const T p = exp_score(sc[s] - m);
      sum += p;
      const T* vs = v + s * row_stride;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) oh[j] += p * vs[j];
    }
    const T inv = T(1) / sum;
    for (int64_t j = 0; j < d; ++j) oh[j] *= inv;
    lse[h] = m + std::log(sum);
  }
}

}  // namespace

template <class T>
void attention_decode(T* out, T* lse, const T* q, const T* k, const T* v, int64_t n, const int64_t* seq,
                      const int64_t* q_pos, const int64_t* n_slots, const int64_t* slot_pos,
                      int64_t pos_stride, const DecodeAttentionShape& s, double scale) {
  TSP_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0 && s.n_heads % s.n_kv_heads == 0,
            "attention_decode: n_heads={} must be a positive multiple of n_kv_heads={} (head_dim {})",
            s.n_heads, s.n_kv_heads, s.head_dim);
  TSP_CHECK(s.row_stride >= s.n_kv_heads * s.head_dim,
            "attention_decode: row stride {} is shorter than n_kv_heads * head_dim = {}", s.row_stride,
            s.n_kv_heads * s.head_dim);
  const int64_t d = s.head_dim, group = s.n_heads / s.n_kv_heads, tasks = n * s.n_kv_heads;
  double work = 0;
  for (int64_t i = 0; i < n; ++i) work += double(n_slots[i]) * double(s.n_heads) * double(d);
  // Below ~a million multiply-adds a parallel region costs more than it saves.
  const int threads = work < double(1 << 20) ? 1 : std::min<int>(omp_get_max_threads(), int(tasks));
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> scores;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t i = t / s.n_kv_heads, g = t % s.n_kv_heads;
      const int64_t base = seq[i] * s.seq_stride + g * d;
      decode_task(out + (i * s.n_heads + g * group) * d, lse + i * s.n_heads + g * group,
                  q + (i * s.n_heads + g * group) * d, k + base, v + base, q_pos[i], n_slots[i],
                  slot_pos ? slot_pos + i * pos_stride : nullptr, group, d, s.row_stride, T(scale), scores);
    }
  }
}

template <class T>
void attention_merge(T* out, int64_t out_stride, T* lse, const T* part_out, const T* part_lse,
                     int64_t part_stride, int64_t parts, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    T m = kNegInf<T>;
    for (int64_t p = 0; p < parts; ++p) m = std::max(m, part_lse[p * part_stride + r]);
    T* o = out + r * out_stride;
    std::fill(o, o + d, T(0));
    if (m == kNegInf<T>) {
      if (lse) lse[r] = kNegInf<T>;
      continue;
    }
    T sum = T(0);
    for (int64_t p = 0; p < parts; ++p) {
      const T l = part_lse[p * part_stride + r];
      if (l == kNegInf<T>) continue;
      const T w = std::exp(l - m);
      sum += w;
      const T* po = part_out + p * part_stride + r * d;
      for (int64_t j = 0; j < d; ++j) o[j] += w * po[j];
    }
    for (int64_t j = 0; j < d; ++j) o[j] /= sum;
    if (lse) lse[r] = m + std::log(sum);
  }
}

#define TSP_INSTANTIATE(T)                                                                         \
  template void attention_decode<T>(T*, T*, const T*, const T*, const T*, int64_t, const int64_t*, \
                                    const int64_t*, const int64_t*, const int64_t*, int64_t,       \
                                    const DecodeAttentionShape&, double);                          \
  template void attention_merge<T>(T*, int64_t, T*, const T*, const T*, int64_t, int64_t, int64_t, int64_t);
TSP_INSTANTIATE(float)
TSP_INSTANTIATE(double)
#undef TSP_INSTANTIATE

}  // namespace tsp::kernels

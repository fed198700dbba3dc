// One query per sequence reads every visible cache slot once: the kernel is bound by the cache's memory
// traffic, not by arithmetic, so it is written as plain loops that sweep each slot's row of keys (then of
// values) once and contiguously, for every head at a time (a BLAS call per [1 x slots] product would cost
// more in call overhead than the product itself, and a head-by-head sweep would read each row in strided
// pieces). Long contexts are cut into chunks of kChunk slots (split-K, "flash-decoding"): each chunk yields a
// partial output and log-sum-exp per head, merged exactly by attention_merge; chunks are the tasks that
// threads share. Tasks are independent and merged in chunk order, so the result does not depend on the thread
// count.
#include "kernels/attention_decode.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/check.h"
#include "kernels/bf16.h"
#include "kernels/softmax_exp.h"

namespace tsp::kernels {

namespace {

template <class T>
constexpr T kNegInf = -std::numeric_limits<T>::infinity();

constexpr int64_t kChunk = 512;

// Slots [s0, s1) of one query row, every head: out[n_heads, d] and lse[n_heads] over the visible slots.
// scores: scratch of n_heads * (s1 - s0).
// A cache element as the kernel computes with it: in T, or bf16 bits widened (a bf16 cache).
template <class T>
inline T cached(T x) {
  return x;
}
inline float cached(uint16_t b) {
  return bf16_to_float(b);
}

template <class T, class C>
void decode_chunk(T* out, T* lse, const T* q, const C* k, const C* v, int64_t q_pos, int64_t s0, int64_t s1,
                  const int64_t* slot_pos, const DecodeAttentionShape& sh, T scale, std::vector<T>& scores) {
  const int64_t H = sh.n_heads, d = sh.head_dim, group = sh.n_heads / sh.n_kv_heads, n = s1 - s0;
  scores.resize(size_t(H * n));
  for (int64_t s = s0; s < s1; ++s) {
    const bool visible = (slot_pos ? slot_pos[s] : s) <= q_pos;
    const C* row = k + s * sh.row_stride;
    for (int64_t h = 0; h < H; ++h) {
      if (!visible) {
        scores[size_t(h * n + s - s0)] = kNegInf<T>;
        continue;
      }
      const C* kh = row + (h / group) * d;
      const T* qh = q + h * d;
      T dot = T(0);
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < d; ++j) dot += qh[j] * cached(kh[j]);
      scores[size_t(h * n + s - s0)] = dot * scale;
    }
  }
  std::fill(out, out + H * d, T(0));
  for (int64_t h = 0; h < H; ++h) {
    T* sc = scores.data() + h * n;
    T m = kNegInf<T>;
    for (int64_t s = 0; s < n; ++s) m = nan_max(m, sc[s]);
    if (m == kNegInf<T>) {
      lse[h] = kNegInf<T>;
      continue;
    }
    T sum = T(0);
    for (int64_t s = 0; s < n; ++s) {
      const T p = exp_score(sc[s] - m);  // masked slots: exp(-inf) = 0
      sc[s] = p;
      sum += p;
    }
    lse[h] = m + std::log(sum);
    const T inv = T(1) / sum;
    for (int64_t s = 0; s < n; ++s) sc[s] *= inv;
  }
  for (int64_t s = s0; s < s1; ++s) {
    const C* row = v + s * sh.row_stride;
    for (int64_t h = 0; h < H; ++h) {
      const T p = scores[size_t(h * n + s - s0)];
      if (p == T(0)) continue;
      const C* vh = row + (h / group) * d;
      T* oh = out + h * d;
#pragma omp simd
      for (int64_t j = 0; j < d; ++j) oh[j] += p * cached(vh[j]);
    }
  }
}

}  // namespace

template <class T, class C>
void attention_decode(T* out, T* lse, const T* q, const C* k, const C* v, int64_t n, const int64_t* seq,
                      const int64_t* q_pos, const int64_t* n_slots, const int64_t* slot_pos,
                      int64_t pos_stride, const DecodeAttentionShape& s, double scale) {
  TSP_CHECK(s.n_heads > 0 && s.n_kv_heads > 0 && s.head_dim > 0 && s.n_heads % s.n_kv_heads == 0,
            "attention_decode: n_heads={} must be a positive multiple of n_kv_heads={} (head_dim {})",
            s.n_heads, s.n_kv_heads, s.head_dim);
  TSP_CHECK(s.row_stride >= s.n_kv_heads * s.head_dim,
            "attention_decode: row stride {} is shorter than n_kv_heads * head_dim = {}", s.row_stride,
            s.n_kv_heads * s.head_dim);
  const int64_t H = s.n_heads, d = s.head_dim;
  // Tasks: (row, chunk); first[i] is row i's first task.
  std::vector<int64_t> first(size_t(n + 1), 0);
  double work = 0;
  for (int64_t i = 0; i < n; ++i) {
    first[size_t(i + 1)] = first[size_t(i)] + std::max<int64_t>(1, (n_slots[i] + kChunk - 1) / kChunk);
    work += double(n_slots[i]) * double(H) * double(d);
  }
  const int64_t tasks = first[size_t(n)];
  // Partial outputs and log-sum-exps of every task, kept between calls (one decode step calls this once per
  // layer) so that the loop does not allocate.
  thread_local std::vector<T> part_out, part_lse;
  part_out.resize(size_t(tasks * H * d));
  part_lse.resize(size_t(tasks * H));
  // The calling thread's buffers, by pointer: inside the parallel region the name would be each thread's own.
  T* const po = part_out.data();
  T* const pl = part_lse.data();
  // Below ~a million multiply-adds a parallel region costs more than it saves.
  const int threads = work < double(1 << 20) ? 1 : std::min<int>(omp_get_max_threads(), int(tasks));
#pragma omp parallel num_threads(threads)
  {
    std::vector<T> scores;
#pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t i = std::upper_bound(first.begin(), first.end(), t) - first.begin() - 1;
      const int64_t c = t - first[size_t(i)], s0 = c * kChunk, s1 = std::min(n_slots[i], s0 + kChunk);
      const int64_t base = seq[i] * s.seq_stride;
      decode_chunk(po + t * H * d, pl + t * H, q + i * H * d, k + base, v + base, q_pos[i], s0,
                   std::max(s0, s1), slot_pos ? slot_pos + i * pos_stride : nullptr, s, T(scale), scores);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t0 = first[size_t(i)], chunks = first[size_t(i + 1)] - t0;
    attention_merge(out + i * H * d, d, lse + i * H, po + t0 * H * d, H * d, pl + t0 * H, H, chunks, H, d);
  }
}

template <class T>
void attention_merge(T* out, int64_t out_stride, T* lse, const T* part_out, int64_t out_stride_p,
                     const T* part_lse, int64_t lse_stride_p, int64_t parts, int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    T m = kNegInf<T>;
    for (int64_t p = 0; p < parts; ++p) m = nan_max(m, part_lse[p * lse_stride_p + r]);
    T* o = out + r * out_stride;
    std::fill(o, o + d, T(0));
    if (m == kNegInf<T>) {
      if (lse) lse[r] = kNegInf<T>;
      continue;
    }
    T sum = T(0);
    for (int64_t p = 0; p < parts; ++p) {
      const T l = part_lse[p * lse_stride_p + r];
      if (l == kNegInf<T>) continue;
      const T w = std::exp(l - m);
      sum += w;
      const T* po = part_out + p * out_stride_p + r * d;
      for (int64_t j = 0; j < d; ++j) o[j] += w * po[j];
    }
    for (int64_t j = 0; j < d; ++j) o[j] /= sum;
    if (lse) lse[r] = m + std::log(sum);
  }
}

#define TSP_INSTANTIATE(T, C)                                                                         \
  template void attention_decode<T, C>(T*, T*, const T*, const C*, const C*, int64_t, const int64_t*, \
                                       const int64_t*, const int64_t*, const int64_t*, int64_t,       \
                                       const DecodeAttentionShape&, double);
TSP_INSTANTIATE(float, float)
TSP_INSTANTIATE(double, double)
TSP_INSTANTIATE(float, uint16_t)
template void attention_merge<float>(float*, int64_t, float*, const float*, int64_t, const float*, int64_t,
                                     int64_t, int64_t, int64_t);
template void attention_merge<double>(double*, int64_t, double*, const double*, int64_t, const double*,
                                      int64_t, int64_t, int64_t, int64_t);
#undef TSP_INSTANTIATE

}  // namespace tsp::kernels

#include "kernels/embedding.h"

#include <omp.h>
#include <algorithm>

#include "core/check.h"
#include "kernels/bf16.h"
#include "kernels/frozen_weights.h"

namespace tsp::kernels {

namespace {
constexpr int64_t kParallelElements = int64_t(1) << 16;

bool in_shard(int64_t token, int64_t row_begin, int64_t rows) {
  return token >= row_begin && token < row_begin + rows;
}
}  // namespace

template <class T>
void embedding_forward(T* out, const T* table, const int32_t* tokens, int64_t n, int64_t h, int64_t row_begin,
                       int64_t rows) {
  TSP_CHECK(n >= 0 && h > 0 && row_begin >= 0 && rows >= 0,
            "embedding_forward: bad shape n={} h={} rows [{}, +{})", n, h, row_begin, rows);
  // Under the bf16 policy the model looks up the held bf16 table (frozen_weights.h).
  if constexpr (std::is_same_v<T, float>)
    if (const uint16_t* held = rows > 0 ? held_bf16(table, rows * h) : nullptr)
      return embedding_forward(out, held, tokens, n, h, row_begin, rows);
#pragma omp parallel for schedule(static) if (n * h > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    if (!in_shard(tokens[i], row_begin, rows)) continue;
    std::copy_n(table + (tokens[i] - row_begin) * h, h, out + i * h);
  }
}

void embedding_forward(float* out, const uint16_t* table, const int32_t* tokens, int64_t n, int64_t h,
                       int64_t row_begin, int64_t rows) {
  TSP_CHECK(n >= 0 && h > 0 && row_begin >= 0 && rows >= 0,
            "embedding_forward: bad shape n={} h={} rows [{}, +{})", n, h, row_begin, rows);
#pragma omp parallel for schedule(static) if (n * h > kParallelElements)
  for (int64_t i = 0; i < n; ++i) {
    if (!in_shard(tokens[i], row_begin, rows)) continue;
    from_bf16(table + (tokens[i] - row_begin) * h, h, out + i * h);
  }
}

template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t h,
                        int64_t row_begin, int64_t rows) {
  TSP_CHECK(n >= 0 && h > 0 && row_begin >= 0 && rows >= 0,
            "embedding_backward: bad shape n={} h={} rows [{}, +{})", n, h, row_begin, rows);
  // A token repeated in the batch hits the same row, so threads own disjoint table rows (each scans all
  // tokens and keeps those it owns): no races, and every row sums its tokens in order whatever the thread
  // count.
#pragma omp parallel if (n * h > kParallelElements)
  {
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t lo = row_begin + rows * me / threads, hi = row_begin + rows * (me + 1) / threads;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t t = tokens[i];
      if (t < lo || t >= hi) continue;
      T* row = dtable + (t - row_begin) * h;
      const T* g = dout + i * h;
      for (int64_t j = 0; j < h; ++j) row[j] += g[j];
    }
  }
}

#define TSP_INSTANTIATE_EMBEDDING(T)                                                                    \
  template void embedding_forward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t); \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t, int64_t);

TSP_INSTANTIATE_EMBEDDING(float)
TSP_INSTANTIATE_EMBEDDING(double)

}  // namespace tsp::kernels

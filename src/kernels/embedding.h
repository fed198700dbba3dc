// Token embedding over a (possibly partial) range of vocabulary rows, so that vocabulary shards can be
// applied one at a time: only tokens in [row_begin, row_begin + rows) are touched.
#pragma once

#include <cstdint>

namespace tsp::kernels {

// out[i, :] = table[tokens[i] - row_begin, :] for tokens inside the range; other rows of out untouched.
// table: [rows, h]; out: [n, h].
template <class T>
void embedding_forward(T* out, const T* table, const int32_t* tokens, int64_t n, int64_t h, int64_t row_begin,
                       int64_t rows);
// The same from a table held as bf16 bits (a vocabulary shard that travelled in bf16): rows widened to fp32.
void embedding_forward(float* out, const uint16_t* table, const int32_t* tokens, int64_t n, int64_t h,
                       int64_t row_begin, int64_t rows);

// dtable[tokens[i] - row_begin, :] += dout[i, :] for tokens inside the range.
template <class T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t h,
                        int64_t row_begin, int64_t rows);

}  // namespace tsp::kernels

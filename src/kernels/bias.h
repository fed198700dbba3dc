// The bias of a linear layer (Qwen2's q, k and v projections): y[n, out] += b[out] for every row, and its
// adjoint db[out] += sum over rows of dy[n, out].
#pragma once

#include <cstdint>

namespace tsp::kernels {

template <class T>
void bias_forward(T* y, const T* b, int64_t n, int64_t out);

// Sums every column in row order (the result does not depend on the thread count).
template <class T>
void bias_backward(T* db, const T* dy, int64_t n, int64_t out);

}  // namespace tsp::kernels

#include "parallel/tpsp/tp_tokens.h"

#include <algorithm>

#include "core/check.h"
#include "core/trace.h"

namespace tsp {

template <class T>
void TpTokens<T>::prepare(const MeshLayout& L, int64_t hidden, bool training) {
  L_ = &L;
  hidden_ = hidden;
  const int64_t nh = L.n * hidden;
  const bool tp = L.tp_size > 1, msp = tp && L.seq_parallel;
  seq_buf_ = Buffer<T>(msp ? nh : 0, Mem::communication);
  seq_out_ = Buffer<T>(msp ? L.n_local * hidden : 0, Mem::communication);
  // The partial sum is all-reduced in place (communication) or reordered into seq_buf_ first (workspace).
  partial_ = Buffer<T>(tp ? nh : 0, msp ? Mem::workspace : Mem::communication);
  u_group_ = Buffer<T>(msp ? nh : 0, Mem::workspace);
  dy_group_ = Buffer<T>(msp && training ? nh : 0, Mem::workspace);  // the backward's gathered dy
}

// The all-gather delivers [T, B, n/(T·B)] rows in TP rank order; the blocks want [B, S/Σ]: TP rank r's rows
// of sequence b are positions [r·n_local/B, (r+1)·n_local/B) of the group's positions of b.
template <class T>
const T* TpTokens<T>::gather(const char* label, const T* local, T* group) {
  const MeshLayout& L = *L_;
  if (!(L.tp_size > 1 && L.seq_parallel)) return local;
  const int64_t rows = L.local_per_seq * hidden_, block = L.n_local * hidden_;
  L.tp->all_gather(label, local, seq_buf_.data(), block);
  TraceSpan span("tp.seq_reorder", "compute");
  for (int r = 0; r < L.tp_size; ++r)
    for (int64_t b = 0; b < L.batch; ++b)
      std::copy_n(seq_buf_.data() + r * block + b * rows, rows,
                  group + (b * L.group_per_seq + r * L.local_per_seq) * hidden_);
  return group;
}

template <class T>
T* TpTokens<T>::partial(T* out) {
  if (L_->tp_size == 1) return out;
  partial_.zero();
  return partial_.data();
}

template <class T>
void TpTokens<T>::reduce_partial(const char* label, T* out, bool accumulate) {
  const MeshLayout& L = *L_;
  if (L.tp_size == 1) return;
  const T* mine = partial_.data();
  int64_t count = L.n * hidden_;
  if (!L.seq_parallel) {
    L.tp->all_reduce(label, partial_.data(), count);
  } else {
    // The adjoint of gather(): the same permutation backwards, then rank r receives the sum of block r.
    const int64_t rows = L.local_per_seq * hidden_, block = L.n_local * hidden_;
    {
      TraceSpan span("tp.seq_reorder", "compute");
      for (int r = 0; r < L.tp_size; ++r)
        for (int64_t b = 0; b < L.batch; ++b)
          std::copy_n(partial_.data() + (b * L.group_per_seq + r * L.local_per_seq) * hidden_, rows,
                      seq_buf_.data() + r * block + b * rows);
    }
    L.tp->reduce_scatter(label, seq_buf_.data(), seq_out_.data(), block);
    mine = seq_out_.data();
    count = block;
  }
  if (accumulate) {
    for (int64_t i = 0; i < count; ++i) out[i] += mine[i];
  } else {
    std::copy_n(mine, count, out);
  }
}

template <class T>
void TpTokens<T>::gather_ids(const char* label, const int32_t* local, std::vector<int32_t>& group) {
  const MeshLayout& L = *L_;
  group.resize(size_t(L.n));
  if (!(L.tp_size > 1 && L.seq_parallel)) {
    std::copy_n(local, L.n, group.begin());
    return;
  }
  ids_buf_.resize(size_t(L.n));
  L.tp->all_gather(label, local, ids_buf_.data(), L.n_local);
  for (int r = 0; r < L.tp_size; ++r)
    for (int64_t b = 0; b < L.batch; ++b)
      std::copy_n(ids_buf_.begin() + (r * L.n_local + b * L.local_per_seq), L.local_per_seq,
                  group.begin() + (b * L.group_per_seq + r * L.local_per_seq));
}

template class TpTokens<float>;
template class TpTokens<double>;

}  // namespace tsp

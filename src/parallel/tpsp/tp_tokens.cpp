#include "parallel/tpsp/tp_tokens.h"

#include <algorithm>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/bf16.h"

namespace tsp {

namespace {
// An element as the model computes with it: a bf16 bit pattern widened, anything else as it is.
inline float to_compute(uint16_t b) {
  return bf16_to_float(b);
}
template <class T>
T to_compute(T x) {
  return x;
}
}  // namespace

template <class T>
void TpTokens<T>::prepare(const MeshLayout& L, int64_t hidden, bool training) {
  L_ = &L;
  hidden_ = hidden;
  const int64_t nh = L.n * hidden, nlh = L.n_local * hidden;
  const bool tp = L.tp_size > 1, msp = tp && L.seq_parallel;
  bf16_ = bf16_storage<T>();
  grad16_ = training && bf16_grad_reduce<T>();
  // The views the transfers use: gathers and forward sums in the activations' dtype, backward sums in the
  // gradient-reduce dtype; a buffer serves both (parallel/wire_buffer.h).
  const bool t_view = !bf16_ || (training && !grad16_), b_view = bf16_ || grad16_;
  seq_buf_.allocate(msp && t_view ? nh : 0, msp && b_view ? nh : 0, Mem::communication);
  seq_out_.allocate(msp && t_view ? nlh : 0, msp && b_view ? nlh : 0, Mem::communication);
  // The partial sum is all-reduced in place (communication) when a sum travels in T, else it is rounded into
  // partial16_ first; under Megatron-SP it is reordered into seq_buf_ (workspace).
  partial_ = Buffer<T>(tp ? nh : 0, msp || !t_view ? Mem::workspace : Mem::communication);
  partial16_ = Buffer<uint16_t>(tp && !msp && b_view ? nh : 0, Mem::communication);
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
  auto unpermute = [&](auto* all, auto&& copy) {
    TraceSpan span("tp.seq_reorder", "compute");
    for (int r = 0; r < L.tp_size; ++r)
      for (int64_t b = 0; b < L.batch; ++b)
        copy(all + r * block + b * rows, group + (b * L.group_per_seq + r * L.local_per_seq) * hidden_);
  };
  if constexpr (std::is_same_v<T, float>)
    if (bf16_) {
      uint16_t* all = seq_buf_.bf16();
      kernels::to_bf16(local, block, all + L.tp_rank * block);
      L.tp->all_gather(label, static_cast<const uint16_t*>(all + L.tp_rank * block), all, block);
      unpermute(all, [&](const uint16_t* src, float* dst) { kernels::from_bf16(src, rows, dst); });
      return group;
    }
  T* all = seq_buf_.t();
  L.tp->all_gather(label, local, all, block);
  unpermute(all, [&](const T* src, T* dst) { std::copy_n(src, rows, dst); });
  return group;
}

template <class T>
T* TpTokens<T>::partial(T* out) {
  if (L_->tp_size == 1) return out;
  partial_.zero();
  return partial_.data();
}

// The sum travels in bf16 for a forward activation under the bf16 policy and for a backward gradient under
// --grad-reduce-dtype bf16: the partial sum is rounded into a bf16 buffer (in the reduce-scatter's rank order
// under Megatron-SP), summed in bf16 and my rows widened into out; else in T, in place.
template <class T>
void TpTokens<T>::reduce_partial(const char* label, T* out, bool accumulate) {
  const MeshLayout& L = *L_;
  if (L.tp_size == 1) return;
  const bool narrow = accumulate ? grad16_ : bf16_;
  const int64_t rows = L.local_per_seq * hidden_, block = L.n_local * hidden_;
  // The adjoint of gather(): the same permutation backwards (rank r receives the sum of block r).
  auto permute = [&](auto* all, auto&& copy) {
    TraceSpan span("tp.seq_reorder", "compute");
    for (int r = 0; r < L.tp_size; ++r)
      for (int64_t b = 0; b < L.batch; ++b)
        copy(partial_.data() + (b * L.group_per_seq + r * L.local_per_seq) * hidden_,
             all + r * block + b * rows);
  };
  auto deliver = [&](const auto* mine, int64_t count) {
    for (int64_t i = 0; i < count; ++i) {
      const T x = T(to_compute(mine[i]));
      out[i] = accumulate ? out[i] + x : x;
    }
  };
  if constexpr (std::is_same_v<T, float>)
    if (narrow) {
      if (!L.seq_parallel) {
        kernels::to_bf16(partial_.data(), L.n * hidden_, partial16_.data());
        L.tp->all_reduce(label, partial16_.data(), L.n * hidden_);
        return deliver(static_cast<const uint16_t*>(partial16_.data()), L.n * hidden_);
      }
      permute(seq_buf_.bf16(), [&](const float* src, uint16_t* dst) { kernels::to_bf16(src, rows, dst); });
      L.tp->reduce_scatter(label, static_cast<const uint16_t*>(seq_buf_.bf16()), seq_out_.bf16(), block);
      return deliver(static_cast<const uint16_t*>(seq_out_.bf16()), block);
    }
  if (!L.seq_parallel) {
    L.tp->all_reduce(label, partial_.data(), L.n * hidden_);
    return deliver(static_cast<const T*>(partial_.data()), L.n * hidden_);
  }
  permute(seq_buf_.t(), [&](const T* src, T* dst) { std::copy_n(src, rows, dst); });
  L.tp->reduce_scatter(label, static_cast<const T*>(seq_buf_.t()), seq_out_.t(), block);
  deliver(static_cast<const T*>(seq_out_.t()), block);
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

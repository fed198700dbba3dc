#include "parallel/kv_exchange.h"

#include <algorithm>
#include <type_traits>

#include "core/precision.h"
#include "core/trace.h"
#include "kernels/bf16.h"

namespace tsp {

namespace {

// The zigzag permutation between the per-rank blocks [P, 2, B, S/P, kd] and K, V [B, S, kd]:
// f(block_off, which, full_off) for every run of chunk · kd contiguous elements (which = 0: K, 1: V).
template <class F>
void each_run(const ZigzagAxis& a, int64_t kd, int64_t local, F&& f) {
  for (int r = 0; r < a.ranks; ++r)
    for (int which = 0; which < 2; ++which)
      for (int64_t b = 0; b < a.batch; ++b)
        for (int h = 0; h < 2; ++h)
          f((2 * r + which) * local + (b * a.per_seq() + h * a.chunk()) * kd, which,
            (b * a.seq_len + a.chunk_start(r, h)) * kd);
}

}  // namespace

template <class T>
void KvExchange<T>::prepare(const ZigzagAxis& axis, int64_t kd, bool training) {
  ax_ = axis;
  kd_ = kd;
  local_ = axis.batch * axis.per_seq() * kd;
  bf16_ = bf16_storage<T>();
  rs_bf16_ = training && bf16_grad_reduce<T>();
  const int64_t all = ax_.ranks * 2 * local_, bwd = training ? 1 : 0;
  const bool rs_t = training && !rs_bf16_;
  wire_.allocate(!bf16_ || rs_t ? all : 0, bf16_ || rs_bf16_ ? all : 0, Mem::communication);
  dkv16_ = Buffer<uint16_t>(rs_bf16_ ? 2 * local_ : 0, Mem::communication);
  mine_ = Buffer<T>(bf16_ ? 2 * local_ : 0, Mem::workspace);
  dkv_ = Buffer<T>(bwd * 2 * local_, Mem::workspace);
}

template <class T>
T* KvExchange<T>::mine() {
  return bf16_ ? mine_.data() : wire_.t() + ax_.rank * 2 * local_;
}

template <class T>
void KvExchange<T>::gather(const char* label, T* k_full, T* v_full) {
  const int64_t run = ax_.chunk() * kd_, n = 2 * local_;
  if constexpr (std::is_same_v<T, float>)
    if (bf16_) {
      uint16_t* all = wire_.bf16();
      uint16_t* slot = all + ax_.rank * n;
      kernels::round_to_bf16(mine_.data(), n, slot);
      ax_.comm->all_gather(label, static_cast<const uint16_t*>(slot), all, n);
      TraceSpan span("attn.kv_reorder", "compute");
      each_run(ax_, kd_, local_, [&](int64_t off, int which, int64_t full_off) {
        kernels::from_bf16(all + off, run, (which == 0 ? k_full : v_full) + full_off);
      });
      return;
    }
  T* all = wire_.t();
  ax_.comm->all_gather(label, static_cast<const T*>(all + ax_.rank * n), all, n);
  TraceSpan span("attn.kv_reorder", "compute");
  each_run(ax_, kd_, local_, [&](int64_t off, int which, int64_t full_off) {
    std::copy_n(all + off, run, (which == 0 ? k_full : v_full) + full_off);
  });
}

template <class T>
CommRequest KvExchange<T>::reduce_scatter(const char* label, const T* dk_full, const T* dv_full) {
  const int64_t run = ax_.chunk() * kd_, n = 2 * local_;
  TraceSpan span("attn.kv_reorder", "compute");
  if constexpr (std::is_same_v<T, float>)
    if (rs_bf16_) {
      uint16_t* all = wire_.bf16();
      each_run(ax_, kd_, local_, [&](int64_t off, int which, int64_t full_off) {
        kernels::to_bf16((which == 0 ? dk_full : dv_full) + full_off, run, all + off);
      });
      return ax_.comm->ireduce_scatter(label, static_cast<const uint16_t*>(all), dkv16_.data(), n);
    }
  T* all = wire_.t();
  each_run(ax_, kd_, local_, [&](int64_t off, int which, int64_t full_off) {
    std::copy_n((which == 0 ? dk_full : dv_full) + full_off, run, all + off);
  });
  return ax_.comm->ireduce_scatter(label, static_cast<const T*>(all), dkv_.data(), n);
}

template <class T>
T* KvExchange<T>::finish(CommRequest& r) {
  ax_.comm->wait(r);
  if constexpr (std::is_same_v<T, float>)
    if (rs_bf16_) kernels::from_bf16(dkv16_.data(), 2 * local_, dkv_.data());
  return dkv_.data();
}

template class KvExchange<float>;
template class KvExchange<double>;

}  // namespace tsp

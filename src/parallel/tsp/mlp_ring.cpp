#include "parallel/tsp/mlp_ring.h"

#include <type_traits>

#include "core/check.h"
#include "core/precision.h"
#include "core/trace.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"

namespace tsp {

template <class T>
void TspMlpRing<T>::prepare(const TspLayout& L, const ModelParams<T>& p, bool training, bool bf16_wire) {
  TSP_CHECK(!bf16_wire || (std::is_same_v<T, float>), "a bf16 weight wire narrows float weights only");
  L_ = &L;
  bf16_wire_ = bf16_wire;
  hidden_ = p.config().hidden_size;
  inter_ = p.spec().intermediate.size;
  shard_numel_ = p.value(p.mlp_block(0)).size();
  off_ = p.mlp_offsets();
  for (auto& b : ring_) b = Buffer<T>(bf16_wire ? 0 : shard_numel_, Mem::communication);
  for (auto& b : ring16_) b = Buffer<uint16_t>(bf16_wire ? shard_numel_ : 0, Mem::communication);
  const int64_t bwd = training ? 1 : 0;
  // The accumulators travel in T or, under --grad-reduce-dtype bf16, in bf16 (ring.h).
  grad16_ = training && bf16_grad_reduce<T>();
  for (auto& b : acc_) b = Buffer<T>(grad16_ ? 0 : bwd * shard_numel_, Mem::communication);
  for (auto& b : acc16_) b = Buffer<uint16_t>(grad16_ ? shard_numel_ : 0, Mem::communication);
  grad_partial_ = Buffer<T>(bwd * shard_numel_, Mem::workspace);
  for (Buffer<T>* b : {&g_, &up_, &act_}) *b = Buffer<T>(L.n * inter_, Mem::workspace);
  for (Buffer<T>* b : {&dact_, &dg_, &dup_}) *b = Buffer<T>(bwd * L.n * inter_, Mem::workspace);
}

template <class T>
template <class F>
void TspMlpRing<T>::with_ring(F&& f) {
  with_pair(bf16_wire_, ring_, ring16_, f);
}

template <class T>
template <class F>
void TspMlpRing<T>::with_accumulators(F&& f) {
  with_pair(grad16_, acc_, acc16_, f);
}

template <class T>
void TspMlpRing<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  const TspLayout& L = *L_;
  bool first = true;
  with_ring([&](auto* buf0, auto* buf1) {
    weight_ring(L, "mlp.weight_ring", p.value(p.mlp_block(layer)).data(), shard_numel_, buf0, buf1,
                [&](const auto* shard, int) {
                  TraceSpan span("mlp.fwd", "compute");
                  const kernels::WeightRef<T> w(shard);
                  // y = Σ_s (silu(u W_gate_sᵀ) ⊙ u W_up_sᵀ) W_down_sᵀ: every shard's channels, my tokens.
                  mlp_shard_forward(y, g_.data(), up_.data(), act_.data(), u, w + off_.gate, w + off_.up,
                                    w + off_.down, L.n, hidden_, inter_, !first);
                  first = false;
                });
  });
}

template <class T>
void TspMlpRing<T>::backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  const TspLayout& L = *L_;
  with_ring([&](auto* buf0, auto* buf1) {
    with_accumulators([&](auto* acc0, auto* acc1) {
      weight_ring_with_grad(L, "mlp.weight_ring", "mlp.grad_ring", p.value(p.mlp_block(layer)).data(),
                            shard_numel_, buf0, buf1, p.grad(p.mlp_block(layer)).data(), shard_numel_, acc0,
                            acc1, grad_partial_.data(), [&](const auto* shard, T* dw, int) {
                              TraceSpan span("mlp.bwd", "compute");
                              const kernels::WeightRef<T> w(shard);
                              // Recompute this shard's gate and up projections (the forward kept nothing).
                              kernels::linear_forward(g_.data(), u, w + off_.gate, L.n, hidden_, inter_);
                              kernels::linear_forward(up_.data(), u, w + off_.up, L.n, hidden_, inter_);
                              mlp_shard_backward(du, dw + off_.gate, dw + off_.up, dw + off_.down, dy, u,
                                                 w + off_.gate, w + off_.up, w + off_.down, g_.data(),
                                                 up_.data(), act_.data(), dact_.data(), dg_.data(),
                                                 dup_.data(), L.n, hidden_, inter_);
                            });
    });
  });
}

template class TspMlpRing<float>;
template class TspMlpRing<double>;

}  // namespace tsp

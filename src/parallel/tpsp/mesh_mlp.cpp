#include "parallel/tpsp/mesh_mlp.h"

#include "core/trace.h"
#include "kernels/gemm.h"
#include "parallel/blocks.h"

namespace tsp {

template <class T>
void MeshMlp<T>::prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training) {
  L_ = &L;
  tp_ = &tp;
  hidden_ = p.config().hidden_size;
  inter_ = p.spec().intermediate.size;
  for (Buffer<T>* b : {&g_, &up_, &act_}) *b = Buffer<T>(L.n * inter_, Mem::workspace);
  for (Buffer<T>* b : {&dact_, &dg_, &dup_}) *b = Buffer<T>(training ? L.n * inter_ : 0, Mem::workspace);
}

template <class T>
void MeshMlp<T>::forward(ModelParams<T>& p, int layer, const T* u, T* y) {
  const MeshLayout& L = *L_;
  LayerWeights<T> w = p.layer(layer);
  const T* ug = tp_->gather_input("tp.mlp_in_allgather", u);
  {
    TraceSpan span("mlp.fwd", "compute");
    mlp_shard_forward(tp_->partial(y), g_.data(), up_.data(), act_.data(), ug, w.gate, w.up, w.down, L.n,
                      hidden_, inter_, false);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.mlp_out_reducescatter" : "tp.mlp_out_allreduce", y, false);
}

template <class T>
void MeshMlp<T>::backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du) {
  const MeshLayout& L = *L_;
  LayerWeights<T> w = p.layer(layer);
  LayerWeights<T> g = p.layer_grad(layer);
  const T* dyg = tp_->gather_output_grad("tp.mlp_out_grad_allgather", dy);
  const T* ug = tp_->gather_input("tp.mlp_in_allgather", u);
  T* dug = tp_->partial(du);
  {
    TraceSpan span("mlp.bwd", "compute");
    kernels::linear_forward(g_.data(), ug, w.gate, L.n, hidden_, inter_);
    kernels::linear_forward(up_.data(), ug, w.up, L.n, hidden_, inter_);
    mlp_shard_backward(dug, g.gate, g.up, g.down, dyg, ug, w.gate, w.up, w.down, g_.data(), up_.data(),
                       act_.data(), dact_.data(), dg_.data(), dup_.data(), L.n, hidden_, inter_);
  }
  tp_->reduce_partial(L.seq_parallel ? "tp.mlp_in_grad_reducescatter" : "tp.mlp_in_grad_allreduce", du, true);
}

template class MeshMlp<float>;
template class MeshMlp<double>;

}  // namespace tsp

// The gated MLP on the mesh (docs/layouts.md): Megatron's column-parallel gate/up and row-parallel down on
// intermediate shard t, applied to the SP group's tokens; the output is a partial sum over TP (TpTokens:
// all-reduce, or reduce-scatter under Megatron-SP). Nothing MLP-sized is saved: the backward recomputes the
// gate and up projections from u.
#pragma once

#include "core/memory.h"
#include "model/params.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/tpsp/tp_tokens.h"

namespace tsp {

template <class T>
class MeshMlp {
 public:
  // training = false (prefill): no gradient scratch.
  void prepare(const MeshLayout& L, TpTokens<T>& tp, const ModelParams<T>& p, bool training = true);
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);
  void backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du);

 private:
  const MeshLayout* L_ = nullptr;
  TpTokens<T>* tp_ = nullptr;
  int64_t hidden_ = 0, inter_ = 0;            // h and I/T
  Buffer<T> g_, up_, act_, dact_, dg_, dup_;  // workspace [n, I/T]
};

}  // namespace tsp

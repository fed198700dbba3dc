// The TP axis's two mappings of activations (Megatron's mappings.py, in this project's vocabulary), shared by
// the attention, the MLP, the embedding and the LM head of the mesh:
//   entering a block: the block computes on the group's n tokens. Without Megatron-SP every TP rank already
//     holds them (identity; adjoint: the all-reduce of the input gradient's partial sums). With Megatron-SP
//     the local n/T tokens are all-gathered over TP (adjoint: reduce-scatter of the input gradient).
//   leaving a block: a row-parallel output is a partial sum over TP ranks: all-reduce (identity in the
//     backward), or with Megatron-SP reduce-scatter back to the token owners (adjoint: all-gather of dy).
// Nothing happens, and nothing is counted, when T = 1.
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "parallel/tpsp/mesh_layout.h"

namespace tsp {

template <class T>
class TpTokens {
 public:
  // Buffers (docs/layouts.md): T > 1 without Megatron-SP: communication n·h (the partial sum all-reduced in
  // place). With Megatron-SP: communication n·h (all-gather destination / reduce-scatter source in TP rank
  // order) + n_local·h (reduce-scatter destination); workspace 3·n·h (gathered u, gathered dy, partial).
  void prepare(const MeshLayout& L, int64_t hidden, bool training = true);

  // The group's rows [n, h] of the block input u [n_local, h] (u itself without Megatron-SP).
  const T* gather_input(const char* label, const T* u) { return gather(label, u, u_group_.data()); }
  // The same for the output gradient dy (the adjoint of reduce_output under Megatron-SP).
  const T* gather_output_grad(const char* label, const T* dy) { return gather(label, dy, dy_group_.data()); }
  // Where a block writes its partial sum over TP of a [n, h] result destined for `out` [n_local, h]: `out`
  // itself when T = 1 (the block then writes it as it would write `out`), else a zeroed buffer.
  T* partial(T* out);
  // Completes the sum over TP of what was written to partial(out) and stores (accumulate: adds) my rows in
  // out: all-reduce, or reduce-scatter under Megatron-SP.
  void reduce_partial(const char* label, T* out, bool accumulate);
  // Token ids (or targets) of the group from the local ids (a copy without Megatron-SP).
  void gather_ids(const char* label, const int32_t* local, std::vector<int32_t>& group);

 private:
  const T* gather(const char* label, const T* local, T* group);
  const MeshLayout* L_ = nullptr;
  int64_t hidden_ = 0;
  Buffer<T> seq_buf_, seq_out_, partial_;  // communication
  Buffer<T> u_group_, dy_group_;           // workspace (Megatron-SP)
  std::vector<int32_t> ids_buf_;
};

}  // namespace tsp

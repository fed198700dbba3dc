// The TP axis's two mappings of activations (Megatron's mappings.py, in this project's vocabulary), shared by
// the attention, the MLP, the embedding and the LM head of the mesh:
//   entering a block: the block computes on the group's n tokens. Without Megatron-SP every TP rank already
//     holds them (identity; adjoint: the all-reduce of the input gradient's partial sums). With Megatron-SP
//     the local n/T tokens are all-gathered over TP (adjoint: reduce-scatter of the input gradient).
//   leaving a block: a row-parallel output is a partial sum over TP ranks: all-reduce (identity in the
//     backward), or with Megatron-SP reduce-scatter back to the token owners (adjoint: all-gather of dy).
// Nothing happens, and nothing is counted, when T = 1. Under the bf16 policy (core/precision.h) the
// activations travel in bf16: gathered rows are rounded (the products they feed round them anyway), and the
// forward's partial sums are rounded and summed in bf16 (comm/communicator.h), as Megatron's are. The
// backward's sums are gradients: in fp32 unless --grad-reduce-dtype bf16 (measured: summing the input
// gradient in bf16 adds error beyond bf16's to the norm weights' gradients, docs/precision.md).
#pragma once

#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "parallel/tpsp/mesh_layout.h"
#include "parallel/wire_buffer.h"

namespace tsp {

template <class T>
class TpTokens {
 public:
  // Buffers (docs/layouts.md): T > 1 without Megatron-SP: communication n·h (the partial sum all-reduced in
  // place). With Megatron-SP: communication n·h (all-gather destination / reduce-scatter source in TP rank
  // order) + n_local·h (reduce-scatter destination); workspace 3·n·h (gathered u, gathered dy, partial).
  // Under bf16 the Megatron-SP buffers are sized for the wider of their views (bf16, or T when training
  // sums gradients in T); without Megatron-SP a bf16 buffer of n·h carries the rounded partial sum, and the
  // partial sum in T is communication only when training sums gradients in T (else workspace).
  void prepare(const MeshLayout& L, int64_t hidden, bool training = true);

  // The group's rows [n, h] of the block input u [n_local, h] (u itself without Megatron-SP).
  const T* gather_input(const char* label, const T* u) { return gather(label, u, u_group_.data()); }
  // The same for the output gradient dy (the adjoint of reduce_output under Megatron-SP).
  const T* gather_output_grad(const char* label, const T* dy) { return gather(label, dy, dy_group_.data()); }
  // Where a block writes its partial sum over TP of a [n, h] result destined for `out` [n_local, h]: `out`
  // itself when T = 1 (the block then writes it as it would write `out`), else a zeroed buffer.
  T* partial(T* out);
  // Completes the sum over TP of what was written to partial(out) and stores (accumulate: adds) my rows in
  // out: all-reduce, or reduce-scatter under Megatron-SP. accumulate is the backward's input gradient (a
  // gradient sum, in the --grad-reduce-dtype); otherwise a forward activation (in the activations' dtype).
  void reduce_partial(const char* label, T* out, bool accumulate);
  // Token ids (or targets) of the group from the local ids (a copy without Megatron-SP).
  void gather_ids(const char* label, const int32_t* local, std::vector<int32_t>& group);

 private:
  const T* gather(const char* label, const T* local, T* group);
  const MeshLayout* L_ = nullptr;
  int64_t hidden_ = 0;
  bool bf16_ = false;                // the bf16 policy: gathers and forward sums travel in bf16
  bool grad16_ = false;              // --grad-reduce-dtype bf16: the backward's sums too
  WireBuffer<T> seq_buf_, seq_out_;  // communication (Megatron-SP), in T or bf16 (wire_buffer.h)
  Buffer<T> partial_;                // communication (without Megatron-SP, summed in T) or workspace
  Buffer<uint16_t> partial16_;       // communication: the partial sum rounded, to be summed in bf16
  Buffer<T> u_group_, dy_group_;     // workspace (Megatron-SP)
  std::vector<int32_t> ids_buf_;
};

}  // namespace tsp

// TSP gated MLP (tsp-spec.md §6, §7): the packed shards [W_gate_s | W_up_s | W_down_s] circulate on the
// weight ring and every rank applies each one to its own tokens, summing over shards locally (no all-reduce).
// Backward: the weights circulate again, the gate/up of each shard are recomputed from u (nothing
// MLP-sized is saved) and a gradient accumulator travels with each shard back to its owner.
// Sent and received per rank per layer, in packed shards of 3·h·I/D elements: forward D-1 (mlp.weight_ring);
// backward D-1 weight shards (mlp.weight_ring) and D-1 accumulators (mlp.grad_ring).
#pragma once

#include "core/memory.h"
#include "model/params.h"
#include "parallel/tsp/ring.h"

namespace tsp {

template <class T>
class TspMlpRing {
 public:
  // training = false (prefill): no gradient accumulators or scratch. bf16_wire (float only, under bf16
  // products): the weight shards ride the ring as bf16 (ring.h); the accumulators stay in T.
  void prepare(const TspLayout& L, const ModelParams<T>& p, bool training = true, bool bf16_wire = false);
  void forward(ModelParams<T>& p, int layer, const T* u, T* y);
  void backward(ModelParams<T>& p, int layer, const T* u, const T* dy, T* du);

 private:
  // Calls f(buf0, buf1) with the weight ring's buffers: bf16 ones on a bf16 wire, else those in T.
  template <class F>
  void with_ring(F&& f);
  // Calls f(acc0, acc1) with the gradient accumulators: bf16 ones under --grad-reduce-dtype bf16, else in T.
  template <class F>
  void with_accumulators(F&& f);

  const TspLayout* L_ = nullptr;
  int64_t hidden_ = 0, inter_ = 0;  // h and the intermediate width of one shard
  int64_t shard_numel_ = 0;         // packed MLP shard: 3 · inter_ · h
  MlpOffsets off_;
  // Communication: the weight ring's two buffers and the two travelling gradient accumulators.
  Buffer<T> ring_[2], acc_[2];
  Buffer<uint16_t> ring16_[2];  // the weight ring of a bf16 wire (instead of ring_)
  bool bf16_wire_ = false;
  Buffer<uint16_t> acc16_[2];  // the accumulators under --grad-reduce-dtype bf16 (instead of acc_)
  bool grad16_ = false;
  // Workspace: this step's gradient contribution (added to the arriving accumulator), and [n, inter_]
  // scratch.
  Buffer<T> grad_partial_, g_, up_, act_, dact_, dg_, dup_;
};

}  // namespace tsp

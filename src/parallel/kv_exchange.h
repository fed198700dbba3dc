// The K/V exchange of a zigzag token layout (tsp-spec.md §5) over the P ranks of one axis: TSP's D ranks, or
// the mesh's SP group. Rank r holds, of every sequence, the zigzag chunks r and 2P-1-r; for one head group it
// computes k|v of its tokens ([2, n, kd], n = B · S/P, sequence-major), all-gathers everyone's into K and V
// of all S positions in sequence order ([B, S, kd] each: the flash kernel's causal block skipping wants
// sorted keys), and in the backward reduce-scatters dK|dV back to the token owners (the adjoint).
//
// Under the bf16 policy (core/precision.h) k|v travel as bf16, half the bytes: my k|v are rounded into my
// slot of the gather buffer and in place, so that every rank computes with the bits that travelled. dK|dV are
// gradient sums: fp32 unless --grad-reduce-dtype bf16, when they are rounded into the reduce-scatter's send
// buffer, summed in bf16 (comm/communicator.h) and widened on arrival.
//
// Buffers: communication: the gather buffer [P, 2, n, kd] (also the reduce-scatter's send side; sized for the
// wider of its two uses, parallel/wire_buffer.h), and with a bf16 reduce-scatter its bf16 destination
// [2, n, kd]; workspace: my dK|dV in T [2, n, kd] (training), and under bf16 my k|v in T [2, n, kd].
#pragma once

#include <cstdint>

#include "comm/communicator.h"
#include "core/memory.h"
#include "parallel/wire_buffer.h"

namespace tsp {

struct ZigzagAxis {
  Communicator* comm = nullptr;
  int ranks = 1, rank = 0;
  int64_t batch = 0, seq_len = 0;
  int64_t per_seq() const { return seq_len / ranks; }
  int64_t chunk() const { return seq_len / (2 * ranks); }
  int64_t chunk_start(int r, int h) const { return (h == 0 ? r : 2 * ranks - 1 - r) * chunk(); }
};

template <class T>
class KvExchange {
 public:
  // kd: the head group's kv_dim; training: also the backward's buffers.
  void prepare(const ZigzagAxis& axis, int64_t kd, bool training);
  // Where my k|v [2, n, kd] are computed (k first, v at + local()).
  T* mine();
  int64_t local() const { return local_; }
  // all-gathers my k|v (mine()) under `label` into k_full and v_full [B, S, kd].
  void gather(const char* label, T* k_full, T* v_full);
  // Posts the reduce-scatter of dk_full, dv_full [B, S, kd] to the token owners; finish() waits for it and
  // returns my dK|dV [2, n, kd] (the caller may consume them in place).
  CommRequest reduce_scatter(const char* label, const T* dk_full, const T* dv_full);
  T* finish(CommRequest& r);

 private:
  ZigzagAxis ax_;
  int64_t kd_ = 0, local_ = 0;
  bool bf16_ = false, rs_bf16_ = false;  // k|v on a bf16 wire; dK|dV summed in bf16
  WireBuffer<T> wire_;
  Buffer<T> mine_, dkv_;
  Buffer<uint16_t> dkv16_;
};

}  // namespace tsp

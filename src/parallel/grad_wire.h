// Gradient sums on the wire (--grad-reduce-dtype, core/precision.h). Gradients accumulate in T; by default
// they are also summed across ranks in T, in place. With --grad-reduce-dtype bf16 a sum is rounded into a
// bf16 mirror, summed in bf16 (comm/communicator.h: every partial sum rounded, as NCCL's bf16 reductions)
// and widened back into the gradient: half the bytes on the wire, bf16's rounding on the result.
//
// The mirror is communication memory sized by the caller for what it has in flight at once (a whole model
// for the per-block all-reduces that data and sequence parallelism post together; the largest single
// tensor for sums done one after the other); `slot` places a sum inside it.
#pragma once

#include <cstdint>
#include <string_view>

#include "comm/communicator.h"
#include "core/check.h"
#include "core/memory.h"
#include "core/precision.h"
#include "kernels/bf16.h"

namespace tsp {

template <class T>
class GradWire {
 public:
  // elements: the mirror (allocated only under --grad-reduce-dtype bf16).
  void prepare(int64_t elements) {
    bf16_ = bf16_grad_reduce<T>();
    mirror_ = Buffer<uint16_t>(bf16_ ? elements : 0, Mem::communication);
  }
  bool bf16() const { return bf16_; }

  // A posted sum: wait with finish().
  struct Pending {
    CommRequest req;
    T* g = nullptr;
    const uint16_t* b = nullptr;
    int64_t n = 0;
  };
  // Sums g[0, n) in place over comm under `label` (non-blocking).
  Pending iall_reduce(Communicator& comm, std::string_view label, T* g, int64_t n, int64_t slot = 0) {
    Pending p{CommRequest(), g, nullptr, n};
    if constexpr (std::is_same_v<T, float>)
      if (bf16_) {
        uint16_t* b = at(slot, n);
        kernels::to_bf16(g, n, b);
        p.b = b;
        p.req = comm.iall_reduce(label, b, n);
        return p;
      }
    p.req = comm.iall_reduce(label, g, n);
    return p;
  }
  void finish(Communicator& comm, Pending& p) {
    comm.wait(p.req);
    if constexpr (std::is_same_v<T, float>)
      if (p.b) kernels::from_bf16(p.b, p.n, p.g);
  }
  void all_reduce(Communicator& comm, std::string_view label, T* g, int64_t n, int64_t slot = 0) {
    Pending p = iall_reduce(comm, label, g, n, slot);
    finish(comm, p);
  }
  // Adds the sum over comm's ranks of partial[0, n) to `into` on `root` (blocking; partial is read only).
  void reduce_add(Communicator& comm, std::string_view label, const T* partial, T* into, int64_t n,
                  int root) {
    if constexpr (std::is_same_v<T, float>)
      if (bf16_) {
        uint16_t* send = at(0, 2 * n);
        uint16_t* recv = send + n;
        kernels::to_bf16(partial, n, send);
        const bool is_root = comm.rank() == root;
        comm.reduce(label, static_cast<const uint16_t*>(send), is_root ? recv : nullptr, n, root);
        if (is_root)
          for (int64_t i = 0; i < n; ++i) into[i] += bf16_to_float(recv[i]);
        return;
      }
    TSP_CHECK(false, "GradWire::reduce_add sums in T through the caller's own buffers");
  }

 private:
  uint16_t* at(int64_t slot, int64_t n) {
    TSP_CHECK(slot >= 0 && slot + n <= mirror_.size(), "gradient wire: [{}, +{}) outside the {} mirror", slot,
              n, mirror_.size());
    return mirror_.data() + slot;
  }
  bool bf16_ = false;
  Buffer<uint16_t> mirror_;
};

}  // namespace tsp

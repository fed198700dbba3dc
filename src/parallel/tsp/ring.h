// Where TSP's tokens live and how its weight shards move (tsp-spec.md §3-§8). Two movement patterns, each
// with its adjoint:
//   broadcast_shards:           owner r broadcasts its shard to everyone, r = 0..D-1 (attention, §5);
//                               adjoint: reduce the weight-gradient partials to the owner (attention.cpp).
//   weight_ring:                shards circulate p -> p+1, so at step t rank p holds shard (p - t) mod D
//                               (MLP §6, vocabulary §8);
//   weight_ring_with_grad:      the same ring with a gradient accumulator travelling with each shard (§7).
// All three are double-buffered: the transfer of the next shard is posted before the compute with the current
// one and waited after it, so the GEMMs hide the traffic.
//
// The weights travel as W: the model's T, or bf16 bits (uint16_t) for float models under
// --weight-comm-dtype bf16. With W != T a rank's own shard is rounded into the communication buffer that is
// free at that moment (its previous content's compute and send are done), so the bf16 wire needs no third
// buffer, and every rank, the owner included, computes with the same bf16 shard. Gradients always travel in
// T (their accumulation is fp32).
#pragma once

#include <cstdint>
#include <string_view>
#include <type_traits>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "core/trace.h"
#include "kernels/bf16.h"
#include "kernels/frozen_weights.h"

namespace tsp {

// The token layout of one step shape on the D ranks of the folded axis.
struct TspLayout {
  Communicator* comm = nullptr;
  int D = 1, p = 0;
  int64_t batch = 0, seq_len = 0;
  int64_t per_seq = 0;                   // tokens of each sequence held here: S / D (two zigzag chunks)
  int64_t n = 0;                         // local tokens: batch * per_seq, stored sequence-major
  std::vector<int64_t> seq_positions;    // [per_seq] global positions of my tokens within a sequence
  std::vector<int64_t> token_positions;  // [n] global position of every local token (RoPE)
  std::vector<int64_t> key_positions;    // [S] 0..S-1: gathered K/V are stored in global token order

  int next() const { return (p + 1) % D; }
  int prev() const { return (p + D - 1) % D; }
  // The shard this rank holds at step t of a ring: shards travel to p+1, so it came from p - t.
  int shard_at(int t) const { return ((p - t) % D + D) % D; }
  int64_t chunk() const { return seq_len / (2 * D); }
  // First global position of half h (0 or 1) of rank r's tokens: the zigzag chunks r and 2D-1-r.
  int64_t chunk_start(int r, int h) const { return (h == 0 ? r : 2 * D - 1 - r) * chunk(); }
};

// The layout of a [batch, seq_len] step on comm's ranks (seq_len a multiple of 2D, checked by the caller).
TspLayout make_tsp_layout(Communicator& comm, int64_t batch, int64_t seq_len);

// Calls f(b0, b1) with a pair of buffers: the bf16 ones when `narrow` (float only), else those in T — a
// ring's weight buffers on a bf16 wire, or its gradient accumulators under --grad-reduce-dtype bf16.
template <class T, class F>
void with_pair(bool narrow, Buffer<T> (&wide)[2], Buffer<uint16_t> (&bf16)[2], F&& f) {
  if constexpr (std::is_same_v<T, float>)
    if (narrow) return f(bf16[0].data(), bf16[1].data());
  f(wide[0].data(), wide[1].data());
}

// The own shard in the wire type: itself when W is T, its held bf16 copy under the bf16 policy, else rounded
// into `slot` (n elements).
template <class W, class T>
const W* on_wire(const T* own, int64_t n, W* slot) {
  if constexpr (std::is_same_v<W, T>) {
    return own;
  } else {
    static_assert(std::is_same_v<T, float> && std::is_same_v<W, uint16_t>, "the only narrowed wire is bf16");
    // Under the bf16 policy the held copy is these bits already (kernels/frozen_weights.h): sent as it is.
    if (const uint16_t* held = kernels::frozen_bf16(own, n)) return held;
    TraceSpan span("weights.bf16_convert", "convert");
    kernels::to_bf16(own, n, slot);
    return slot;
  }
}

// Visits the shards of owners r = 0..D-1, each broadcast from its owner under `label`; the broadcast of shard
// r+1 is in flight while use(shard, r) computes with shard r. own: this rank's shard (sent as is when p is
// the root and W is T; MPI does not write a root's buffer); buf0, buf1: two communication buffers of n
// elements of W. use(const W*, r).
template <class W, class T, class Use>
void broadcast_shards(const TspLayout& L, std::string_view label, const T* own, int64_t n, W* buf0, W* buf1,
                      Use&& use) {
  Communicator& comm = *L.comm;
  W* bufs[2] = {buf0, buf1};
  // Shard r goes to bufs[r % 2]: when shard r is posted, that buffer's last shard (r-2) has been used. The
  // root's own shard is rounded there on a narrowed wire, else sent from where it lies.
  auto shard = [&](int r) {
    return r == L.p ? const_cast<W*>(on_wire<W>(own, n, bufs[r % 2])) : bufs[r % 2];
  };
  W* cur = shard(0);
  CommRequest pending = comm.ibroadcast(label, cur, n, 0);
  for (int r = 0; r < L.D; ++r) {
    comm.wait(pending);
    W* next = nullptr;
    // bufs[(r+1) % 2] held shard r-1, whose compute has finished.
    if (r + 1 < L.D) {
      next = shard(r + 1);
      pending = comm.ibroadcast(label, next, n, r + 1);
    }
    use(static_cast<const W*>(cur), r);
    cur = next;
  }
}

// The forward ring: use(shard, s) is called for every shard s, starting with this rank's own. D-1 transfers
// of n elements per rank under `label`. own is only read; buf0, buf1: two communication buffers of n
// elements of W. use(const W*, s).
template <class W, class T, class Use>
void weight_ring(const TspLayout& L, std::string_view label, const T* own, int64_t n, W* buf0, W* buf1,
                 Use&& use) {
  Communicator& comm = *L.comm;
  W* bufs[2] = {buf0, buf1};
  // On a narrowed wire the own shard is rounded into bufs[1], which first receives at t = 1.
  const W* cur = on_wire<W>(own, n, bufs[1]);
  for (int t = 0; t < L.D; ++t) {
    // cur arrived in bufs[(t-1) % 2]; bufs[t % 2] held the shard of step t-1, whose send has been waited,
    // so it can receive the next shard while cur is being sent on.
    W* next = bufs[t % 2];
    CommRequest pending;
    if (t + 1 < L.D) pending = comm.isend_recv(label, cur, n, L.next(), next, n, L.prev());
    use(cur, L.shard_at(t));
    comm.wait(pending);
    cur = next;
  }
}

// The adjoint of weight_ring: the weights circulate again (own_w null: no weights needed, e.g. the
// embedding's backward) and a gradient accumulator of n_g elements travels with every shard, so that it
// arrives at its owner holding the sum over all ranks of contribute(w_s, dw, s), which ACCUMULATES shard s's
// gradient from this rank's tokens into dw.
//
// Schedule, per rank: at t = 0 the own shard's contribution goes straight into own_grad. At t = 1 the
// contribution to shard p-1 starts an accumulator. At t >= 2 the contribution to shard p-t is computed into
// `partial` while the accumulator of that shard, sent by p-1 at the end of its step t-1, is in flight; then
// it is added to the accumulator. After every t >= 1 the accumulator goes to p+1, which at t = D-1 is the
// owner (p-(D-1) = p+1 mod D): on arrival it is added into own_grad. Transfers per rank per call: D-1 weight
// shards (n_w, when own_w is set) under w_label and D-1 accumulators (n_g) under g_label. Every rank posts
// the two rings in the same order, so the messages match in posting order (one MPI tag).
// Weights travel as W (wbuf0, wbuf1: n_w elements of W); accumulators as A (acc0, acc1: n_g elements): T, or
// bf16 bits under --grad-reduce-dtype bf16, where each addition into the accumulator is rounded to bf16 (a
// bf16 sum, like the other gradient reductions) and every contribution is computed into `partial` in T.
template <class W, class A, class T, class Contribute>
void weight_ring_with_grad(const TspLayout& L, std::string_view w_label, std::string_view g_label,
                           const T* own_w, int64_t n_w, W* wbuf0, W* wbuf1, T* own_grad, int64_t n_g, A* acc0,
                           A* acc1, T* partial, Contribute&& contribute) {
  static_assert(std::is_same_v<A, T> || (std::is_same_v<A, uint16_t> && std::is_same_v<T, float>),
                "accumulators travel in T or in bf16");
  constexpr bool narrow = !std::is_same_v<A, T>;
  Communicator& comm = *L.comm;
  W* wbufs[2] = {wbuf0, wbuf1};
  A* accs[2] = {acc0, acc1};
  const W* cur = own_w ? on_wire<W>(own_w, n_w, wbufs[1]) : nullptr;
  CommRequest w_pending, g_pending;
  int held = 0;  // accs[held]: the accumulator received last (or started at t = 1)
  for (int t = 0; t < L.D; ++t) {
    W* next = wbufs[t % 2];
    if (own_w && t + 1 < L.D) w_pending = comm.isend_recv(w_label, cur, n_w, L.next(), next, n_w, L.prev());
    const int s = L.shard_at(t);
    if (t == 0) {
      contribute(cur, own_grad, s);
    } else {
      A* acc = accs[held];
      if constexpr (!narrow) {
        if (t == 1) {
          for (int64_t i = 0; i < n_g; ++i) acc[i] = T(0);
          contribute(cur, acc, s);
        } else {
          for (int64_t i = 0; i < n_g; ++i) partial[i] = T(0);
          contribute(cur, partial, s);
          comm.wait(g_pending);
          for (int64_t i = 0; i < n_g; ++i) acc[i] += partial[i];
        }
      } else {
        for (int64_t i = 0; i < n_g; ++i) partial[i] = T(0);
        contribute(cur, partial, s);
        if (t == 1) {
          kernels::to_bf16(partial, n_g, acc);
        } else {
          comm.wait(g_pending);
          for (int64_t i = 0; i < n_g; ++i) acc[i] = float_to_bf16(bf16_to_float(acc[i]) + partial[i]);
        }
      }
      // The other buffer went out in the previous exchange, which has been waited.
      g_pending =
          comm.isend_recv(g_label, static_cast<const A*>(acc), n_g, L.next(), accs[1 - held], n_g, L.prev());
      held = 1 - held;
    }
    comm.wait(w_pending);
    cur = next;
  }
  if (L.D > 1) {
    comm.wait(g_pending);
    const A* acc = accs[held];
    for (int64_t i = 0; i < n_g; ++i) {
      if constexpr (narrow)
        own_grad[i] += bf16_to_float(acc[i]);
      else
        own_grad[i] += acc[i];
    }
  }
}

}  // namespace tsp

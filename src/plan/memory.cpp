// Memory per rank, by the tracked allocator's categories (src/core/memory.h). Runtime-exact formulas for
// single and tsp are those asserted in tests/mpi/test_tsp_memory.cpp and docs/tsp.md; the mesh layouts follow
// docs/layouts.md. Elements are multiplied by the policy's element sizes at the end.
#include <algorithm>

#include "plan/sizes.h"

namespace tsp::plan {

namespace {

// AdamW's m and v per parameter block, each block split over the replicas with ZeRO-1 (padded to a multiple
// of dp, so every replica owns an equal slice); a master copy of the weights is whole.
int64_t optimizer_bytes(const Sizes& z, const LayoutSpec& lay, const Policy& pol) {
  const int64_t master = pol.master_weights ? pol.master_bytes * z.param_elements() : 0;
  if (!(lay.zero1 && lay.dp > 1)) return 2 * pol.optimizer_bytes * z.param_elements() + master;
  const int64_t N = lay.dp;
  auto part = [N](int64_t numel) { return (numel + N - 1) / N; };
  const int64_t el =
      z.L * (part(z.attn_block()) + part(z.mlp_block())) + part(z.vocab_block()) + part(z.norms);
  return 2 * pol.optimizer_bytes * el + master;
}

// One layer's saved block activations per token, split into the saved tensors (q, k, v, o, gate, up, and
// with q/k norms the pre-norm q and k; saved at activation_bytes) and the statistics (the log-sum-exp of
// every head, at compute_bytes), for the heads this rank applies: all of them (single, TSP) or its head
// group.
struct PerToken {
  int64_t tensors = 0, stats = 0;
};
PerToken block_activations_per_token(const Sizes& z, int64_t heads_split) {
  const int64_t kv = heads_split == 1 ? z.kvd : z.kvd_s;
  const int64_t qd = z.qd / heads_split;
  return {2 * qd + 2 * kv + 2 * z.I / heads_split + (z.qk_norm ? qd + kv : 0), z.nh / heads_split};
}

// Activations a block saves per layer for the backward, per rank, in elements.
PerToken block_saved(const Sizes& z, const LayoutSpec& lay, Recompute rc) {
  // TSP keeps every head's o for its own tokens; the mesh keeps its head group for its sequence shard.
  const int64_t heads_split = lay.kind == Kind::tsp ? 1 : z.T;
  const int64_t n = z.N_a;
  switch (rc) {
    case Recompute::none: {  // q, k, v, o, lse, gate, up (and pre-norm q, k)
      const PerToken t = block_activations_per_token(z, heads_split);
      return {n * t.tensors, n * t.stats};
    }
    case Recompute::selective:  // o and lse
      return {n * z.qd / heads_split, n * z.nh / heads_split};
    default:
      return {};
  }
}

// Bytes of a buffer that one transfer views in T and another in bf16 (src/parallel/wire_buffer.h): sized in
// elements of T for the larger view.
int64_t wire_buffer_bytes(int64_t n_t, int64_t n_bf16, int64_t compute_bytes) {
  const int64_t per = compute_bytes / 2;
  return compute_bytes * std::max(n_t, (n_bf16 + per - 1) / per);
}

// The K/V exchange over `ranks` of a zigzag axis (src/parallel/kv_exchange.h), for `local` = n · kv_dim of
// one head group: communication and workspace bytes.
struct Bytes {
  int64_t comm = 0, ws = 0;
};
Bytes kv_exchange(const Policy& pol, int64_t ranks, int64_t local) {
  const bool bf16 = pol.act_wire_bytes < pol.compute_bytes, rs16 = pol.grad_wire_bytes < pol.compute_bytes;
  const int64_t all = ranks * 2 * local, cb = pol.compute_bytes;
  Bytes b;
  b.comm =
      wire_buffer_bytes(!bf16 || !rs16 ? all : 0, bf16 || rs16 ? all : 0, cb) + (rs16 ? 2 * 2 * local : 0);
  b.ws = cb * (2 * local + (bf16 ? 2 * local : 0));  // my dK|dV, and under bf16 my k|v in T
  return b;
}

}  // namespace

Memory predict_memory(const Sizes& z, const LayoutSpec& lay, const Policy& pol, Recompute rc) {
  const int64_t cb = pol.compute_bytes, ab = pol.activation_bytes, ww = pol.weight_wire_bytes;
  const bool narrow = pol.stash_narrow(), grad16 = pol.grad_wire_bytes < cb;
  Memory m;
  m.parameters = pol.weight_bytes * z.param_elements();
  m.gradients = pol.grad_bytes * z.param_elements();
  m.optimizer = optimizer_bytes(z, lay, pol);

  // Saved activations. The transformer keeps each layer's two norm inputs and inverse RMS, and the final
  // norm's (full recompute keeps only the layer inputs); the head keeps one log-sum-exp per token. Saved
  // tensors at activation_bytes, statistics at compute_bytes; a narrower stash computes each saved tensor in
  // one working buffer (workspace, below).
  const int64_t Nt = z.N_t, L = z.L, h = z.h;
  int64_t saved = rc == Recompute::full ? (L + 1) * Nt * h : (2 * L + 1) * Nt * h;
  int64_t stats = rc == Recompute::full ? Nt : (2 * L + 1) * Nt;
  const PerToken blk = block_saved(z, lay, rc);
  saved += L * blk.tensors;
  stats += L * blk.stats;
  stats +=
      lay.kind == Kind::tsp || lay.kind == Kind::single ? Nt : z.N_a;  // head lse (mesh: SP group tokens)
  if (lay.kind == Kind::tsp && lay.keep_gathered_kv) saved += L * z.T * 2 * z.BS * z.kvd_s;
  m.activations = ab * saved + cb * stats;

  // Communication buffers (allocated once) and the named scratch buffers (workspace estimate), in elements
  // of T unless counted in bytes (comm_bytes, ws_bytes).
  int64_t comm = 0, ws = 4 * Nt * h;  // transformer: u, y, du, dx
  int64_t comm_bytes = 0, ws_bytes = 0;
  if (narrow) ws += 2 * Nt * h;  // the transformer's stashes' working buffers (x_in, x_mid)
  const int64_t T = z.T;
  switch (lay.kind) {
    case Kind::single:
      ws += 4 * z.N_a + 2 * z.N_a * z.qd + 2 * z.N_a * z.kvd + 4 * z.N_a * z.I + 2 * z.N_a * z.V;
      // The stashes' working buffers: q, o, k, v, the pre-norm q and k, gate, up.
      if (narrow) ws += z.N_a * (2 * z.qd + 2 * z.kvd + (z.qk_norm ? z.qd + z.kvd : 0) + 2 * z.I);
      break;
    case Kind::tsp: {
      const int64_t D = T, N = z.N_a, W_a = z.attn_block(), W_m = z.W_mlp / D, P_v = z.V_p / D * h;
      // The weight buffers (two per movement pattern) at the weight wire's bytes.
      comm_bytes += ww * (2 * W_a + 2 * W_m + 2 * P_v);
      // The attention's weight-gradient partial: the reduce's send buffer, or (bf16 sums) workspace beside
      // the gradient wire's bf16 send | receive pair. The rings' two accumulators each.
      if (grad16) {
        ws += W_a;
        comm_bytes += 2 * 2 * W_a + pol.grad_wire_bytes * (2 * W_m + 2 * P_v);
      } else {
        comm += W_a + 2 * W_m + 2 * P_v;
      }
      const Bytes kv = kv_exchange(pol, D, N * z.kvd_s);
      comm_bytes += kv.comm;
      ws_bytes += kv.ws;
      const int64_t full_kv = z.BS * z.kvd_s;
      ws += 3 * N * z.qd_s + (lay.keep_gathered_kv ? 0 : 2 * full_kv) + 2 * full_kv;
      if (z.qk_norm) ws += N * (z.qd_s + z.kvd_s);  // pre-norm q and k of the head group differentiated
      ws += W_m + 6 * N * z.I / D;                  // MLP: gradient partial, gate/up/act and their gradients
      ws += P_v + 2 * N * (z.V_p / D) + 4 * N;      // vocabulary: gradient partial, logits, online LSE state
      if (narrow)
        ws += N * z.qd_s + (lay.keep_gathered_kv ? 2 * full_kv : 0);  // o's (and K|V's) working buffer
      // The replicated gradients' bf16 mirror: the norms, then the KV heads' (src/parallel/tsp/tsp.cpp).
      if (grad16) comm_bytes += 2 * std::max(z.norms, z.kv_replicas > 1 ? L * z.attn_kv_part() : int64_t(0));
      break;
    }
    default: {  // tp, sp, tpsp: src/parallel/tpsp/ (docs/layouts.md); n = the SP group's tokens
      const int64_t n = z.N_a, nl = z.N_t, full_kv = z.BS * z.kvd_s;
      const bool seqpar = lay.sequence_parallel && T > 1;
      const bool act16 = pol.act_wire_bytes < cb, t_view = !act16 || !grad16, b_view = act16 || grad16;
      if (T > 1 && seqpar) {
        // The all-gather destination / reduce-scatter source and the reduce-scatter destination, in T or
        // bf16 (src/parallel/tpsp/tp_tokens.h); gathered u, gathered dy and the partial sum in T.
        comm_bytes += wire_buffer_bytes(t_view ? n * h : 0, b_view ? n * h : 0, cb) +
                      wire_buffer_bytes(t_view ? nl * h : 0, b_view ? nl * h : 0, cb);
        ws += 3 * n * h;
      } else if (T > 1) {
        // The partial sum, all-reduced in place when a sum travels in T; a bf16 copy when one travels in
        // bf16.
        (t_view ? comm : ws) += n * h;
        if (b_view) comm_bytes += 2 * n * h;
      }
      if (z.Sg > 1) {
        const Bytes kv = kv_exchange(pol, z.Sg, n * z.kvd_s);
        comm_bytes += kv.comm;
        ws_bytes += kv.ws;
      }
      if (T > 1) comm += T * n * 4;                 // online log-sum-exp states of the group tokens
      ws += 3 * n * z.qd_s + 4 * full_kv;           // attention
      if (z.qk_norm) ws += n * (z.qd_s + z.kvd_s);  // pre-norm q and k for the q/k norms' backward
      ws += 6 * n * z.I / T;                        // MLP
      ws += 4 * n + 2 * n * (z.V_p / T);            // vocabulary
      if (narrow) ws += n * z.qd_s;                 // o's working buffer
      if (grad16) {
        // The replicated gradients' bf16 mirror: every block over SP at once, then the norms, the KV heads.
        const int64_t sp_all = z.Sg > 1 ? z.param_elements() : 0;
        comm_bytes += 2 * std::max({sp_all, z.norms, z.kv_replicas > 1 ? L * z.attn_kv_part() : int64_t(0)});
      }
      break;
    }
  }
  if (narrow) {
    // The bf16 policy's products run the flash kernel on bf16 head-major copies (src/kernels/attention.cpp):
    // the backward's dO, Q, K and V for one sequence of the head group and its head-major dQ accumulator,
    // with one thread (each further thread adds an accumulator of nq · qd_s in T).
    const int64_t nq = z.S / z.Sg;
    ws_bytes += 2 * (2 * nq * z.qd_s + 2 * z.S * z.kvd_s) + cb * nq * z.qd_s;
  }
  if (rc == Recompute::full) {  // one layer's activations live again during its backward
    const int64_t heads_split = lay.kind == Kind::tsp ? 1 : T;
    const PerToken t = block_activations_per_token(z, heads_split);
    ws += z.N_a * (t.tensors + t.stats) + 2 * Nt * (h + 1);
  }
  if (lay.dp > 1) {
    if (lay.zero1) {
      // ZeRO-1: one block padded to dp chunks and one chunk, sized for the largest block
      // (docs/data-parallel.md); viewed in bf16 by --grad-reduce-dtype bf16 (never wider than in T).
      const int64_t largest = std::max({z.attn_block(), z.mlp_block(), z.vocab_block(), z.norms});
      comm += (lay.dp + 1) * ((largest + lay.dp - 1) / lay.dp);
    } else if (grad16) {
      comm_bytes += 2 * z.param_elements();  // every block's bf16 sum in flight at once
    }
  }
  m.communication = cb * comm + comm_bytes;
  m.workspace = cb * ws + ws_bytes;
  return m;
}

}  // namespace tsp::plan

// Memory per rank, by the tracked allocator's categories (src/core/memory.h). Runtime-exact formulas for
// single and tsp are those asserted in tests/mpi/test_tsp_memory.cpp and docs/tsp.md; the mesh layouts follow
// docs/layouts.md. Elements are multiplied by the policy's element sizes at the end.
#include <algorithm>

#include "plan/sizes.h"

namespace tsp::plan {

namespace {

// Optimizer elements per rank: AdamW's m and v (and a master copy) per parameter block, each block split
// over the replicas with ZeRO-1 (padded to a multiple of dp, so every replica owns an equal slice).
int64_t optimizer_bytes(const Sizes& z, const LayoutSpec& lay, const Policy& pol) {
  const int64_t per_elem = 2 * pol.optimizer_bytes + (pol.master_weights ? pol.master_bytes : 0);
  if (!(lay.zero1 && lay.dp > 1)) return per_elem * z.param_elements();
  const int64_t N = lay.dp;
  auto part = [N](int64_t numel) { return (numel + N - 1) / N; };
  const int64_t el =
      z.L * (part(z.attn_block()) + part(z.mlp_block())) + part(z.vocab_block()) + part(z.norms);
  return per_elem * el;
}

// Elements per token of one layer's block activations (q, k, v, o, lse, gate, up, and with q/k norms the
// pre-norm q and k) for the heads this rank applies: all of them (single, TSP's what-ifs) or its head group.
int64_t block_activations_per_token(const Sizes& z, int64_t heads_split) {
  const int64_t kv = heads_split == 1 ? z.kvd : z.kvd_s;
  const int64_t qd = z.qd / heads_split;
  return 2 * qd + 2 * kv + z.nh / heads_split + 2 * z.I / heads_split + (z.qk_norm ? qd + kv : 0);
}

// Activations a block saves per layer for the backward, per rank, in elements.
int64_t block_saved(const Sizes& z, const LayoutSpec& lay, Recompute rc) {
  // TSP keeps every head's o for its own tokens; the mesh keeps its head group for its sequence shard.
  const int64_t heads_split = lay.kind == Kind::tsp ? 1 : z.T;
  const int64_t n = z.N_a;
  switch (rc) {
    case Recompute::none:  // q, k, v, o, lse, gate, up (and pre-norm q, k)
      return n * block_activations_per_token(z, heads_split);
    case Recompute::selective:  // o and lse
      return n * (z.qd + z.nh) / heads_split;
    default:
      return 0;
  }
}

}  // namespace

Memory predict_memory(const Sizes& z, const LayoutSpec& lay, const Policy& pol, Recompute rc) {
  const int64_t bw = pol.weight_bytes;
  Memory m;
  m.parameters = bw * z.param_elements();
  m.gradients = m.parameters;
  m.optimizer = optimizer_bytes(z, lay, pol);

  // Saved activations. The transformer keeps each layer's two norm inputs and inverse RMS, and the final
  // norm's (full recompute keeps only the layer inputs); the head keeps one log-sum-exp per token.
  const int64_t Nt = z.N_t, L = z.L, h = z.h;
  int64_t act = rc == Recompute::full ? (L + 1) * Nt * h + Nt : (2 * L + 1) * Nt * (h + 1);
  act += L * block_saved(z, lay, rc);
  act += lay.kind == Kind::tsp || lay.kind == Kind::single
             ? Nt
             : z.N_a;  // head lse (mesh: of the SP group tokens)
  if (lay.kind == Kind::tsp && lay.keep_gathered_kv) act += L * z.T * 2 * z.BS * z.kvd_s;
  m.activations = bw * act;

  // Communication buffers (allocated once) and the named scratch buffers (workspace estimate).
  int64_t comm = 0, ws = 4 * Nt * h;  // transformer: u, y, du, dx
  int64_t wire_comm_bytes = 0;        // TSP's weight buffers, at the weight wire's bytes
  const int64_t T = z.T;
  switch (lay.kind) {
    case Kind::single:
      ws += 4 * z.N_a + 2 * z.N_a * z.qd + 2 * z.N_a * z.kvd + 4 * z.N_a * z.I + 2 * z.N_a * z.V;
      break;
    case Kind::tsp: {
      const int64_t D = T, N = z.N_a, W_a = z.attn_block(), W_m = z.W_mlp / D, P_v = z.V_p / D * h;
      // Weight buffers (two per movement pattern) at the wire's bytes, counted in weight_bytes units below.
      wire_comm_bytes = pol.wire_bytes() * (2 * W_a + 2 * W_m + 2 * P_v);
      comm = W_a + 2 * z.BS * z.kvd_s + 2 * W_m + 2 * P_v;  // gradient partial, K|V, accumulators
      const int64_t full_kv = z.BS * z.kvd_s;
      ws += 3 * N * z.qd_s + (lay.keep_gathered_kv ? 0 : 2 * full_kv) + 2 * full_kv + 2 * N * z.kvd_s;
      if (z.qk_norm) ws += N * (z.qd_s + z.kvd_s);  // pre-norm q and k of the head group differentiated
      ws += W_m + 6 * N * z.I / D;                  // MLP: gradient partial, gate/up/act and their gradients
      ws += P_v + 2 * N * (z.V_p / D) + 4 * N;      // vocabulary: gradient partial, logits, online LSE state
      break;
    }
    default: {  // tp, sp, tpsp: src/parallel/tpsp/ (docs/layouts.md); n = the SP group's tokens
      const int64_t n = z.N_a, nl = z.N_t, full_kv = z.BS * z.kvd_s;
      const bool seqpar = lay.sequence_parallel && T > 1;
      if (T > 1) comm += seqpar ? n * h + nl * h : n * h;  // TP partial sum (in place) or gather/scatter pair
      if (z.Sg > 1) comm += 2 * full_kv;                   // K|V of my head group, all S tokens
      if (T > 1) comm += T * n * 4;                        // online log-sum-exp states of the group tokens
      if (seqpar) ws += 3 * n * h;                         // gathered u, gathered dy, the partial sum
      ws += (z.Sg > 1 ? 2 * n * z.kvd_s : 0) + 3 * n * z.qd_s + 4 * full_kv;  // attention
      if (z.qk_norm) ws += n * (z.qd_s + z.kvd_s);  // pre-norm q and k for the q/k norms' backward
      ws += 6 * n * z.I / T;                        // MLP
      ws += 4 * n + 2 * n * (z.V_p / T);            // vocabulary
      break;
    }
  }
  if (rc == Recompute::full) {  // one layer's activations live again during its backward
    const int64_t heads_split = lay.kind == Kind::tsp ? 1 : T;
    ws += z.N_a * block_activations_per_token(z, heads_split) + 2 * Nt * (h + 1);
  }
  if (lay.zero1 && lay.dp > 1) {
    // ZeRO-1: one block padded to dp chunks and one chunk, sized for the largest block
    // (docs/data-parallel.md).
    const int64_t largest = std::max({z.attn_block(), z.mlp_block(), z.vocab_block(), z.norms});
    comm += (lay.dp + 1) * ((largest + lay.dp - 1) / lay.dp);
  }
  m.communication = bw * comm + wire_comm_bytes;
  m.workspace = bw * ws;
  return m;
}

}  // namespace tsp::plan

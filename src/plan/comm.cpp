// Communication per rank per step, per (phase, label), counted the way src/comm/communicator.h counts it:
// calls, payload bytes (this rank's contribution) and received bytes. A label with zero calls is absent, as
// in the runtime; with one rank on an axis a collective still counts its calls but receives nothing.
#include "plan/sizes.h"

namespace tsp::plan {

namespace {

struct Counter {
  CommByLabel& out;
  // Bytes per element of what a label moves: weights (TSP's shards), activations (gathers and the forward's
  // sums), gradients (every sum of a gradient), and tensors in T (statistics, ZeRO-1's master weights).
  int64_t weight, act, grad, compute;
  // n: elements per call as the op's payload (broadcast/reduce/all_reduce: the buffer; all_gather /
  // reduce_scatter: the per-rank block; send_recv: elements sent = received); elem: bytes per element.
  void add(const std::string& phase, const std::string& label, const std::string& op, int64_t calls,
           int64_t n, int64_t P, bool overlappable, bool dp_axis, int64_t elem) {
    if (calls <= 0) return;
    const int64_t bytes = n * elem;
    int64_t recv = 0;  // over all calls
    if (op == "broadcast" || op == "reduce")
      recv = calls / P * (P - 1) * bytes;  // each of the P ranks is the root once per round of P calls
    else if (op == "all_gather" || op == "reduce_scatter")
      recv = calls * (P - 1) * bytes;
    else if (op == "all_reduce")
      recv = calls * all_reduce_recv(P, bytes);
    else if (op == "send_recv")
      recv = P > 1 ? calls * bytes : 0;
    CommEntry& e = out[phase][label];
    e.op = op;
    e.calls += calls;
    e.payload_bytes += calls * bytes;
    e.recv_bytes += recv;
    e.overlappable = overlappable;
    e.dp_axis = dp_axis;
  }
};

// Calls fn(elements) for each parameter block this rank holds, in ModelParams' order: attention and MLP of
// every layer, the vocabulary, the norms.
template <class Fn>
void each_block(const Sizes& z, Fn&& fn) {
  for (int64_t l = 0; l < z.L; ++l) {
    fn(z.attn_block());
    fn(z.mlp_block());
  }
  fn(z.vocab_block());
  fn(z.norms);
}

// TSP (docs/tsp.md, tests/mpi/test_tsp_comm.cpp). Broadcasts and reduces go to each owner in turn, so over
// the D calls of a layer a rank receives (D-1) shards.
void tsp_comm(Counter& c, const Sizes& z, const LayoutSpec& lay) {
  const int64_t D = z.T, L = z.L, W_a = z.attn_block(), W_m = z.W_mlp / D, P_v = z.V_p / D * z.h;
  const int64_t kv = z.N_a * z.kvd_s;  // my k (or v) of one head group
  for (const char* ph : {"forward", "backward"}) {
    const bool bwd = std::string(ph) == "backward";
    c.add(ph, "attn.weight_bcast", "broadcast", L * D, W_a, D, true, false, c.weight);
    if (!bwd || !lay.keep_gathered_kv)
      c.add(ph, "attn.kv_allgather", "all_gather", L * D, 2 * kv, D, false, false, c.act);
    c.add(ph, "mlp.weight_ring", "send_recv", L * (D - 1), W_m, D, true, false, c.weight);
    c.add(ph, "vocab.ring", "send_recv", (bwd ? 1 : 2) * (D - 1), P_v, D, true, false, c.weight);
  }
  c.add("backward", "attn.kv_grad_reducescatter", "reduce_scatter", L * D, 2 * kv, D, false, false, c.grad);
  c.add("backward", "attn.weight_grad_reduce", "reduce", L * D, W_a, D, true, false, c.grad);
  c.add("backward", "mlp.grad_ring", "send_recv", L * (D - 1), W_m, D, true, false, c.grad);
  c.add("backward", "vocab.grad_ring", "send_recv", 2 * (D - 1), P_v, D, true, false, c.grad);
  c.add("backward", "norm.grad_allreduce", "all_reduce", 1, z.norms, D, true, false, c.grad);
  // KV-head replication: the D / n_kv holders of each KV head sum its gradient (one call per layer).
  if (z.kv_replicas > 1)
    c.add("backward", "attn.kv_head_grad_allreduce", "all_reduce", L, z.attn_kv_part(), z.kv_replicas, true,
          false, c.grad);
}

// Megatron TP (degree T) around context-parallel attention (degree Σ), optionally with Megatron-SP
// (src/parallel/tpsp/, docs/layouts.md). n = B·S/Σ tokens of my SP group, n_l = n/T under Megatron-SP.
// Without Megatron-SP every row-parallel output is all-reduced over TP and every column-parallel input
// gradient too; with it the block inputs (and output gradients) are all-gathered and the outputs (input
// gradients) reduce-scattered, blocks of n_l·h. Token ids and targets travel as int32.
void mesh_comm(Counter& c, const Sizes& z, const LayoutSpec& lay) {
  const int64_t T = z.T, Sg = z.Sg, L = z.L, n = z.N_a, nl = z.N_t, h = z.h;
  const bool tp = T > 1, seqpar = lay.sequence_parallel && tp;
  const int64_t kv = n * z.kvd_s;  // my k (or v) of my head group
  // A row-parallel output (forward: an activation) or column-parallel input gradient (backward: a gradient)
  // summed over TP.
  auto reduce = [&](const char* phase, const std::string& what, int64_t calls) {
    if (!tp) return;
    const int64_t elem = std::string(phase) == "forward" ? c.act : c.grad;
    if (seqpar)
      c.add(phase, "tp." + what + "_reducescatter", "reduce_scatter", calls, nl * h, T, false, false, elem);
    else
      c.add(phase, "tp." + what + "_allreduce", "all_reduce", calls, n * h, T, false, false, elem);
  };
  auto gather = [&](const char* phase, const std::string& label, int64_t calls, int64_t block,
                    int64_t elem = 0) {
    if (seqpar) c.add(phase, label, "all_gather", calls, block, T, false, false, elem ? elem : c.act);
  };
  // forward
  gather("forward", "tp.embed_ids_allgather", 1, nl, 4);
  reduce("forward", "embed", 1);
  gather("forward", "tp.attn_in_allgather", L, nl * h);
  if (Sg > 1) c.add("forward", "sp.kv_allgather", "all_gather", L, 2 * kv, Sg, false, false, c.act);
  reduce("forward", "attn_out", L);
  gather("forward", "tp.mlp_in_allgather", L, nl * h);
  reduce("forward", "mlp_out", L);
  gather("forward", "tp.head_in_allgather", 1, nl * h);
  gather("forward", "tp.head_targets_allgather", 1, nl, 4);
  if (tp) c.add("forward", "tp.ce_allgather", "all_gather", 1, 4 * n, T, false, false, c.compute);
  // backward: the adjoints, and the gathers again (the gathered inputs are not kept)
  gather("backward", "tp.head_in_allgather", 1, nl * h);
  reduce("backward", "head_in_grad", 1);
  gather("backward", "tp.mlp_out_grad_allgather", L, nl * h);
  gather("backward", "tp.mlp_in_allgather", L, nl * h);
  reduce("backward", "mlp_in_grad", L);
  gather("backward", "tp.attn_out_grad_allgather", L, nl * h);
  gather("backward", "tp.attn_in_allgather", L, nl * h);
  if (Sg > 1) {
    c.add("backward", "sp.kv_allgather", "all_gather", L, 2 * kv, Sg, false, false, c.act);
    c.add("backward", "sp.kv_grad_reducescatter", "reduce_scatter", L, 2 * kv, Sg, false, false, c.grad);
  }
  reduce("backward", "attn_in_grad", L);
  gather("backward", "tp.embed_grad_allgather", 1, nl * h);
  // Every block is replicated across SP and its gradient partial over the SP groups' tokens; under
  // Megatron-SP the norms' gradients are also partial over TP.
  if (Sg > 1) {
    each_block(z, [&](int64_t numel) {
      c.add("backward", "sp.weight_grad_allreduce", "all_reduce", 1, numel, Sg, true, false, c.grad);
    });
  }
  if (seqpar) c.add("backward", "tp.norm_grad_allreduce", "all_reduce", 1, z.norms, T, true, false, c.grad);
  // Qwen3's per-head q/k norms are partial over TP even without Megatron-SP (each rank saw its heads).
  if (tp && !seqpar && z.qk_norm)
    c.add("backward", "tp.qk_norm_grad_allreduce", "all_reduce", 1, 2 * z.L * z.d, T, true, false, c.grad);
  // KV-head replication: the T / n_kv TP holders of each KV head sum its gradient (one call per layer).
  if (z.kv_replicas > 1)
    c.add("backward", "tp.kv_head_grad_allreduce", "all_reduce", L, z.attn_kv_part(), z.kv_replicas, true,
          false, c.grad);
  // The loss sums over the ranks holding different tokens; the squared gradient norm over TP's shards.
  const int64_t holders = seqpar ? T * Sg : Sg;
  if (holders > 1) c.add("forward", "loss.allreduce", "all_reduce", 1, 3, holders, false, false, 8);
  if (tp) c.add("optimizer", "optim.gradnorm_allreduce", "all_reduce", 1, 1, T, false, false, 8);
}

// Data parallelism (src/parallel/dp/, docs/data-parallel.md): the loss sums over the replicas, then one
// all-reduce per parameter block; with ZeRO-1 a reduce-scatter of each block padded to N chunks of
// c = ceil(n/N), an all-gather of the updated chunks and a two-double all-reduce of the partitions' norms.
void dp_comm(Counter& c, const Sizes& z, const LayoutSpec& lay) {
  const int64_t N = lay.dp;
  c.add("forward", "dp.loss_allreduce", "all_reduce", 1, 3, N, false, true, 8);
  each_block(z, [&](int64_t numel) {
    const int64_t chunk = (numel + N - 1) / N;
    if (!lay.zero1) {
      c.add("backward", "dp.grad_allreduce", "all_reduce", 1, numel, N, true, true, c.grad);
    } else {
      c.add("backward", "dp.grad_reducescatter", "reduce_scatter", 1, chunk, N, true, true, c.grad);
      // The updated parameters in T: the master weights where the policy has them.
      c.add("optimizer", "dp.param_allgather", "all_gather", 1, chunk, N, true, true, c.compute);
    }
  });
  if (lay.zero1) c.add("optimizer", "dp.optim_partition_allreduce", "all_reduce", 1, 2, N, false, true, 8);
}

}  // namespace

CommByLabel predict_comm(const Sizes& z, const LayoutSpec& lay, const Policy& pol, Recompute rc) {
  (void)rc;  // re-gathering K/V in the backward is the runtime's choice in every recompute mode
  CommByLabel out;
  Counter c{out, pol.weight_wire_bytes, pol.act_wire_bytes, pol.grad_wire_bytes, pol.compute_bytes};
  switch (lay.kind) {
    case Kind::single:
      break;  // no communicator
    case Kind::tsp:
      tsp_comm(c, z, lay);
      break;
    default:
      mesh_comm(c, z, lay);
      break;
  }
  if (lay.kind == Kind::tsp) {
    // Scalars travel as doubles: the loss sum, target count and correct count; the squared gradient norm.
    // TSP calls both on its communicator even when D = 1 (counted, nothing received).
    c.add("forward", "loss.allreduce", "all_reduce", 1, 3, lay.ranks(), false, false, 8);
    c.add("optimizer", "optim.gradnorm_allreduce", "all_reduce", 1, 1, lay.ranks(), false, false, 8);
  }
  if (lay.dp > 1) dp_comm(c, z, lay);
  return out;
}

}  // namespace tsp::plan

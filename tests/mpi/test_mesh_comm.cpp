// mpi-ranks: 1 2 3 4
// The mesh engine counts what it moves and the counts equal the formulas of docs/layouts.md, for every
// layout on 1-4 ranks. Per rank, β = sizeof(T), T x Σ mesh, Megatron-SP "msp" (only when T > 1):
//   n = B·S/Σ group tokens, n_l = n/T with msp (else n), q_t = q_dim/T, kv_t = kv_dim/T, V_t = ceil(V/T)
//   AR(P, x) = floor(2(P-1)·x/P): the bytes an all-reduce of x bytes receives on P ranks (0 calls if P = 1).
// Forward:
//   T > 1, no msp: tp.embed_allreduce 1 x n·h·β; tp.attn_out_allreduce, tp.mlp_out_allreduce L x n·h·β;
//                  tp.ce_allgather 1 x 4n·β per rank (the online log-sum-exp states).
//   T > 1, msp:    tp.embed_ids_allgather 1 x 4·n_l bytes (int32 ids); tp.embed_reducescatter 1 x n_l·h·β;
//                  tp.attn_in_allgather, tp.attn_out_reducescatter, tp.mlp_in_allgather,
//                  tp.mlp_out_reducescatter L x n_l·h·β each; tp.head_in_allgather 1 x n_l·h·β;
//                  tp.head_targets_allgather 1 x 4·n_l bytes; tp.ce_allgather 1 x 4n·β.
//   Σ > 1:         sp.kv_allgather L x 2·n·kv_t·β per rank.
//   loss.allreduce 1 x 24 bytes over the ranks holding different tokens (Σ, or T·Σ with msp).
// Backward:
//   T > 1, no msp: tp.attn_in_grad_allreduce, tp.mlp_in_grad_allreduce L x n·h·β;
//   tp.head_in_grad_allreduce 1. T > 1, msp:    tp.{attn,mlp}_out_grad_allgather, tp.{attn,mlp}_in_allgather
//   (re-gather),
//                  tp.{attn,mlp}_in_grad_reducescatter L x n_l·h·β each; tp.head_in_allgather,
//                  tp.head_in_grad_reducescatter, tp.embed_grad_allgather 1 x n_l·h·β each;
//                  tp.norm_grad_allreduce 1 x (2L+1)·h·β.
//   Σ > 1:         sp.kv_allgather, sp.kv_grad_reducescatter L x 2·n·kv_t·β per rank;
//                  sp.weight_grad_allreduce 2L+2 calls, one per parameter block (its local size).
// all_gather / reduce_scatter of x bytes per rank receive (P-1)·x. Labels of an axis of size 1 never appear.
#include <gtest/gtest.h>

#include "accounting_helpers.h"

#include "mesh_test_model.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

using test::expect_phase;
using test::Expected;
using test::ExpectedPhase;

int64_t AR(int64_t P, int64_t bytes) {
  return 2 * (P - 1) * bytes / P;
}

// Builds the expectations of one layout; every add() of an axis of size 1 is dropped.
struct Formulas {
  int64_t T, Sg, L, B, S, h, n, n_l, q_t, kv_t, V, V_t, beta, parts;
  bool msp;
  void all_reduce(ExpectedPhase& e, const std::string& label, int64_t P, int64_t calls, int64_t bytes) const {
    if (P > 1) e[label] = {"all_reduce", calls, calls * bytes, calls * AR(P, bytes)};
  }
  void per_rank(ExpectedPhase& e, const std::string& label, const std::string& op, int64_t P, int64_t calls,
                int64_t bytes) const {
    if (P > 1) e[label] = {op, calls, calls * bytes, calls * (P - 1) * bytes};
  }
  // The layers' forward, the embedding and (head) the LM head's input.
  void layers_forward(ExpectedPhase& e) const {
    const int64_t x = n * h * beta, xl = n_l * h * beta;
    if (!msp) {
      all_reduce(e, "tp.embed_allreduce", T, 1, x);
      all_reduce(e, "tp.attn_out_allreduce", T, L, x);
      all_reduce(e, "tp.mlp_out_allreduce", T, L, x);
    } else {
      per_rank(e, "tp.embed_ids_allgather", "all_gather", T, 1, 4 * n_l);
      per_rank(e, "tp.embed_reducescatter", "reduce_scatter", T, 1, xl);
      for (const char* l : {"tp.attn_in_allgather", "tp.mlp_in_allgather"})
        per_rank(e, l, "all_gather", T, L, xl);
      for (const char* l : {"tp.attn_out_reducescatter", "tp.mlp_out_reducescatter"})
        per_rank(e, l, "reduce_scatter", T, L, xl);
      per_rank(e, "tp.head_in_allgather", "all_gather", T, 1, xl);
    }
    per_rank(e, "sp.kv_allgather", "all_gather", Sg, L, 2 * n * kv_t * beta);
  }
  int64_t holders() const { return msp ? T * Sg : Sg; }
};

template <class T>
void check_counts(const test::MeshLayoutCase& layout, bool tied) {
  SCOPED_TRACE(layout.label() + (tied ? " tied" : " untied") + (sizeof(T) == 8 ? " double" : " float"));
  Communicator comm = Communicator::world();
  const ModelConfig c = test::mesh_test_config(tied, 3);
  auto mesh = make_replica_strategy<T>(layout.strategy, comm, layout.options());
  ModelParams<T> params(c, mesh->shard_spec(c));
  params.init(3);
  Transformer<T> model(params, *mesh);
  const int64_t B = 2, S = 24;
  std::vector<int32_t> tokens, targets;
  test::accounting_batch(c.vocab_size, B * S, tokens, targets);

  Formulas f;
  f.T = layout.tp;
  f.Sg = layout.sp;
  f.msp = layout.sequence_parallel && layout.tp > 1;
  f.L = c.num_hidden_layers;
  f.B = B;
  f.S = S;
  f.h = c.hidden_size;
  f.n = B * S / f.Sg;
  f.n_l = f.msp ? f.n / f.T : f.n;
  f.q_t = c.q_dim() / f.T;
  f.kv_t = c.kv_dim() / f.T;
  f.V = c.vocab_size;
  f.V_t = (f.V + f.T - 1) / f.T;
  f.beta = sizeof(T);
  f.parts = tied ? 1 : 2;
  const int64_t L = f.L, beta = f.beta, xl = f.n_l * f.h * beta, x = f.n * f.h * beta;

  comm.reset_stats();
  params.zero_grads();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward();
  mesh->set_phase("optimizer");
  AdamW<T> opt(params, kernels::AdamWHyper{});
  opt.step(*mesh, 1e-3, 1.0);

  ExpectedPhase fwd;
  f.layers_forward(fwd);
  if (f.msp) f.per_rank(fwd, "tp.head_targets_allgather", "all_gather", f.T, 1, 4 * f.n_l);
  f.per_rank(fwd, "tp.ce_allgather", "all_gather", f.T, 1, 4 * f.n * beta);
  f.all_reduce(fwd, "loss.allreduce", f.holders(), 1, 3 * 8);
  expect_phase(comm.stats(), "forward", fwd);

  ExpectedPhase bwd;
  if (!f.msp) {
    f.all_reduce(bwd, "tp.attn_in_grad_allreduce", f.T, L, x);
    f.all_reduce(bwd, "tp.mlp_in_grad_allreduce", f.T, L, x);
    f.all_reduce(bwd, "tp.head_in_grad_allreduce", f.T, 1, x);
  } else {
    for (const char* l : {"tp.attn_out_grad_allgather", "tp.attn_in_allgather", "tp.mlp_out_grad_allgather",
                          "tp.mlp_in_allgather"})
      f.per_rank(bwd, l, "all_gather", f.T, L, xl);
    for (const char* l : {"tp.attn_in_grad_reducescatter", "tp.mlp_in_grad_reducescatter"})
      f.per_rank(bwd, l, "reduce_scatter", f.T, L, xl);
    f.per_rank(bwd, "tp.head_in_allgather", "all_gather", f.T, 1, xl);
    f.per_rank(bwd, "tp.embed_grad_allgather", "all_gather", f.T, 1, xl);
    f.per_rank(bwd, "tp.head_in_grad_reducescatter", "reduce_scatter", f.T, 1, xl);
    f.all_reduce(bwd, "tp.norm_grad_allreduce", f.T, 1, (2 * L + 1) * f.h * beta);
  }
  f.per_rank(bwd, "sp.kv_allgather", "all_gather", f.Sg, L, 2 * f.n * f.kv_t * beta);
  f.per_rank(bwd, "sp.kv_grad_reducescatter", "reduce_scatter", f.Sg, L, 2 * f.n * f.kv_t * beta);
  if (f.Sg > 1) {
    // One all-reduce per parameter block: L attention, L MLP, the vocabulary and the norms.
    const int64_t attn = (2 * f.q_t + 2 * f.kv_t) * f.h * beta,
                  mlp = 3 * f.h * c.intermediate_size / f.T * beta;
    const int64_t vocab = f.parts * f.V_t * f.h * beta, norms = (2 * L + 1) * f.h * beta;
    bwd["sp.weight_grad_allreduce"] = {
        "all_reduce", 2 * L + 2, L * (attn + mlp) + vocab + norms,
        L * (AR(f.Sg, attn) + AR(f.Sg, mlp)) + AR(f.Sg, vocab) + AR(f.Sg, norms)};
  }
  expect_phase(comm.stats(), "backward", bwd);

  ExpectedPhase optim;
  f.all_reduce(optim, "optim.gradnorm_allreduce", f.T, 1, 8);
  expect_phase(comm.stats(), "optimizer", optim);

  // The spec's §9 mesh row: received per layer in the forward by the layer's activations
  // = 4(T-1)/T·B·(S/Σ)·h + 2(Σ-1)/Σ·B·S·kv_dim/T elements (Megatron-SP moves the same bytes as all-gathers
  // and reduce-scatters as the all-reduces do).
  int64_t layer_recv = 0;
  const auto fw_it = comm.stats().find("forward");
  if (fw_it != comm.stats().end())
    for (const auto& [label, counter] : fw_it->second)
      if (label.rfind("tp.attn_", 0) == 0 || label.rfind("tp.mlp_", 0) == 0 || label == "sp.kv_allgather")
        layer_recv += counter.recv_bytes;
  EXPECT_EQ(layer_recv, L * (4 * (f.T - 1) * f.n * f.h / f.T + 2 * (f.Sg - 1) * f.n * f.kv_t) * beta);

  // logits(): the layers' forward, the head's columns over TP, and the rows over the token holders.
  comm.reset_stats();
  model.logits(tokens.data(), B, S);
  ExpectedPhase logits;
  f.layers_forward(logits);
  f.per_rank(logits, "tp.logits_allgather", "all_gather", f.T, 1, f.n * f.V_t * beta);
  f.per_rank(logits, "gather.token_rows", "all_gather", f.holders(), 1, f.n_l * f.V * beta);
  expect_phase(comm.stats(), "forward", logits);
}

TEST(MeshComm, CountsMatchFormulasDouble) {
  for (const auto& layout : test::mesh_layouts(Communicator::world().size())) {
    check_counts<double>(layout, false);
    check_counts<double>(layout, true);
  }
}

TEST(MeshComm, CountsMatchFormulasFloat) {
  for (const auto& layout : test::mesh_layouts(Communicator::world().size()))
    check_counts<float>(layout, false);
}

}  // namespace
}  // namespace tsp

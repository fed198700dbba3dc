// mpi-ranks: 1 2 3 4
// TSP counts what it moves, and the counts equal closed-form formulas (tsp-spec.md §9 for the forward,
// extended here to the backward, the vocabulary and the reductions). Per rank, D ranks, β = sizeof(T),
// shard sizes in elements:
//   W_a = (2·q_dim + 2·kv_dim)·h / D   packed attention shard      W_m = 3·h·I / D   packed MLP shard
//   P_v = ceil(V / D)·h                one part (embedding or LM head) of a vocabulary shard
//   N = B·S / D local tokens;          k = N·kv_dim / D   my k (or v) of one head group
// Forward, per step:
//   attn.weight_bcast      broadcast       L·D calls   recv L·(D-1)·W_a·β          (each owner in turn)
//   attn.kv_allgather      all_gather      L·D calls   recv L·D·(D-1)·2k·β = L·2(D-1)/D·B·S·kv_dim·β
//   mlp.weight_ring        send_recv       L·(D-1)     recv L·(D-1)·W_m·β
//   vocab.ring             send_recv       2·(D-1)     recv 2·(D-1)·P_v·β          (embedding + LM head)
//   loss.allreduce         all_reduce      1 call of 3 doubles
// Backward, per step:
//   attn.weight_bcast      broadcast       L·D         recv L·(D-1)·W_a·β          (re-broadcast)
//   attn.kv_allgather      all_gather      L·D         as forward (absent with keep_gathered_kv)
//   attn.kv_grad_reducescatter reduce_scatter L·D      recv L·2(D-1)/D·B·S·kv_dim·β (adjoint of the gather)
//   attn.weight_grad_reduce reduce         L·D         recv L·(D-1)·W_a·β          (adjoint of the broadcast:
//                                                       each rank is the root once per layer)
//   mlp.weight_ring        send_recv       L·(D-1)     recv L·(D-1)·W_m·β
//   mlp.grad_ring          send_recv       L·(D-1)     recv L·(D-1)·W_m·β          (travelling accumulators)
//   vocab.ring             send_recv       D-1         recv (D-1)·P_v·β            (LM head weights only)
//   vocab.grad_ring        send_recv       2·(D-1)     recv 2·(D-1)·P_v·β          (LM head + embedding)
//   norm.grad_allreduce    all_reduce      1 call of (2L+1)·h elements
// A label with zero calls (D = 1 rings) must not appear at all. all_reduce counts floor(2(D-1)·n/D) bytes.
#include <gtest/gtest.h>

#include "accounting_helpers.h"

#include "tsp_test_model.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/tsp/tsp.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

using test::expect_phase;
using test::Expected;
using test::ExpectedPhase;

ModelConfig make_config(bool tied) {
  return test::tsp_test_config(tied, 3);
}

void add(ExpectedPhase& e, const std::string& label, const std::string& op, int64_t calls, int64_t payload,
         int64_t recv) {
  if (calls > 0) e[label] = {op, calls, payload, recv};
}

struct Sizes {
  int64_t D, L, B, S, h, N, W_a, W_m, P_v, kv_dim, local_kv, norm;
};

Sizes sizes(const ModelConfig& c, int D, int64_t B, int64_t S) {
  Sizes z;
  z.D = D;
  z.L = c.num_hidden_layers;
  z.B = B;
  z.S = S;
  z.h = c.hidden_size;
  z.N = B * S / D;
  z.W_a = (2 * c.q_dim() + 2 * c.kv_dim()) * c.hidden_size / D;
  z.W_m = 3 * c.hidden_size * c.intermediate_size / D;
  z.P_v = (c.vocab_size + D - 1) / D * c.hidden_size;
  z.kv_dim = c.kv_dim();
  z.local_kv = z.N * c.kv_dim() / D;
  z.norm = (2 * z.L + 1) * c.hidden_size;
  return z;
}

int64_t ring_all_reduce_bytes(int64_t D, int64_t bytes) {
  return 2 * (D - 1) * bytes / D;
}

// The common forward traffic of the layers (forward step and logits pass).
void add_layer_forward(ExpectedPhase& e, const Sizes& z, int64_t beta) {
  const int64_t D = z.D, L = z.L;
  add(e, "attn.weight_bcast", "broadcast", L * D, L * D * z.W_a * beta, L * (D - 1) * z.W_a * beta);
  add(e, "attn.kv_allgather", "all_gather", L * D, L * D * 2 * z.local_kv * beta,
      L * D * (D - 1) * 2 * z.local_kv * beta);
  add(e, "mlp.weight_ring", "send_recv", L * (D - 1), L * (D - 1) * z.W_m * beta, L * (D - 1) * z.W_m * beta);
}

template <class T>
void check_counts(bool tied, bool keep_kv) {
  SCOPED_TRACE(std::string(tied ? "tied" : "untied") + (keep_kv ? " keep_kv" : "") +
               (sizeof(T) == 8 ? " double" : " float"));
  Communicator comm = Communicator::world();
  const int D = comm.size();
  const int64_t B = 2, S = 24, beta = sizeof(T);
  const ModelConfig c = make_config(tied);
  TspStrategy<T> tsp(comm, TspOptions{keep_kv});
  ModelParams<T> params(c, tsp.shard_spec(c));
  params.init(3);
  Transformer<T> model(params, tsp);
  std::vector<int32_t> tokens, targets;
  test::accounting_batch(c.vocab_size, B * S, tokens, targets);
  const Sizes z = sizes(c, D, B, S);
  const int64_t L = z.L;

  comm.reset_stats();
  params.zero_grads();
  model.forward(tokens.data(), targets.data(), B, S);
  model.backward();
  tsp.set_phase("optimizer");
  AdamW<T> opt(params, kernels::AdamWHyper{});
  opt.step(tsp, 1e-3, 1.0);

  ExpectedPhase fwd;
  add_layer_forward(fwd, z, beta);
  add(fwd, "vocab.ring", "send_recv", 2 * (D - 1), 2 * (D - 1) * z.P_v * beta, 2 * (D - 1) * z.P_v * beta);
  add(fwd, "loss.allreduce", "all_reduce", 1, 3 * 8, ring_all_reduce_bytes(D, 3 * 8));
  expect_phase(comm.stats(), "forward", fwd);

  ExpectedPhase bwd;
  add(bwd, "attn.weight_bcast", "broadcast", L * D, L * D * z.W_a * beta, L * (D - 1) * z.W_a * beta);
  if (!keep_kv)
    add(bwd, "attn.kv_allgather", "all_gather", L * D, L * D * 2 * z.local_kv * beta,
        L * D * (D - 1) * 2 * z.local_kv * beta);
  add(bwd, "attn.kv_grad_reducescatter", "reduce_scatter", L * D, L * D * 2 * z.local_kv * beta,
      L * D * (D - 1) * 2 * z.local_kv * beta);
  add(bwd, "attn.weight_grad_reduce", "reduce", L * D, L * D * z.W_a * beta, L * (D - 1) * z.W_a * beta);
  add(bwd, "mlp.weight_ring", "send_recv", L * (D - 1), L * (D - 1) * z.W_m * beta,
      L * (D - 1) * z.W_m * beta);
  add(bwd, "mlp.grad_ring", "send_recv", L * (D - 1), L * (D - 1) * z.W_m * beta, L * (D - 1) * z.W_m * beta);
  add(bwd, "vocab.ring", "send_recv", D - 1, (D - 1) * z.P_v * beta, (D - 1) * z.P_v * beta);
  add(bwd, "vocab.grad_ring", "send_recv", 2 * (D - 1), 2 * (D - 1) * z.P_v * beta,
      2 * (D - 1) * z.P_v * beta);
  add(bwd, "norm.grad_allreduce", "all_reduce", 1, z.norm * beta, ring_all_reduce_bytes(D, z.norm * beta));
  expect_phase(comm.stats(), "backward", bwd);

  ExpectedPhase optim;
  add(optim, "optim.gradnorm_allreduce", "all_reduce", 1, 8, ring_all_reduce_bytes(D, 8));
  expect_phase(comm.stats(), "optimizer", optim);

  // §9: received per rank per layer in the forward = (D-1)/D·(W_attn + W_mlp) + 2(D-1)/D·B·S·h_kv elements,
  // with the full (unsharded) W_attn = D·W_a and W_mlp = D·W_m.
  const auto& f = comm.stats().at("forward");
  int64_t layer_recv = f.at("attn.weight_bcast").recv_bytes + f.at("attn.kv_allgather").recv_bytes;
  if (D > 1) layer_recv += f.at("mlp.weight_ring").recv_bytes;
  const int64_t W_attn = (2 * c.q_dim() + 2 * c.kv_dim()) * c.hidden_size;
  const int64_t W_mlp = 3 * c.hidden_size * c.intermediate_size;
  EXPECT_EQ(layer_recv, L * ((D - 1) * (W_attn + W_mlp) / D + 2 * (D - 1) * B * S * c.kv_dim() / D) * beta);

  // No activation all-reduce anywhere: the only all-reduces are the loss sums, the gradient norm and the
  // replicated norms' gradients, none bigger than the norm block.
  for (const auto& [phase, labels] : comm.stats())
    for (const auto& [label, counter] : labels) {
      if (counter.op != "all_reduce") continue;
      EXPECT_LE(counter.payload_bytes / counter.calls, z.norm * beta) << phase << " " << label;
    }

  // logits(): the forward of the layers, the embedding and the LM head ring, and the gather of the rows.
  comm.reset_stats();
  model.logits(tokens.data(), B, S);
  ExpectedPhase logits;
  add_layer_forward(logits, z, beta);
  add(logits, "vocab.ring", "send_recv", 2 * (D - 1), 2 * (D - 1) * z.P_v * beta, 2 * (D - 1) * z.P_v * beta);
  add(logits, "gather.token_rows", "all_gather", 1, z.N * c.vocab_size * beta,
      (D - 1) * z.N * c.vocab_size * beta);
  expect_phase(comm.stats(), "forward", logits);
}

TEST(TspComm, CountsMatchFormulasDouble) {
  check_counts<double>(false, false);
  check_counts<double>(true, false);
  check_counts<double>(false, true);
}

TEST(TspComm, CountsMatchFormulasFloat) {
  check_counts<float>(false, false);
}

}  // namespace
}  // namespace tsp

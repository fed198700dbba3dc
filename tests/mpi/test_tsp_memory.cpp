// mpi-ranks: 1 2 4
// TSP's memory per rank, from the tracked allocator (tsp-spec.md §10), in elements × β = sizeof(T):
//   parameters = gradients = (L·(W_attn + W_mlp) + parts·V·h)/D with V padded up to a multiple of D, plus
//                the replicated norms (2L+1)·h  (parts = 1 tied, 2 untied); optimizer (AdamW m, v) = 2× that.
//   saved activations: the transformer's norm inputs and inverse RMS, (2L+1)·N·(h+1), and TSP's o and lse,
//                L·N·(q_dim + n_heads), plus the final lse N, with N = B·S/D; keep_gathered_kv adds
//                L·2·B·S·kv_dim. Without it, D × TSP's activations ≤ the single device's: TSP saves exactly
//                1/D of a subset of what the single device saves (the latter also keeps q, k, v and the
//                MLP's gate and up per layer), so the asserted bound is act_tsp ≤ act_single / D.
//   communication (allocated once, the peak): 3·W_a (two broadcast buffers + the gradient partial sent to
//                the owner), 2·B·S·kv_dim/D (the gathered k|v of one head group, also the send side of the
//                dK/dV reduce-scatter), 4·W_m (two ring buffers + two travelling accumulators), 4·P_v (the
//                same for one part of a vocabulary shard).
#include <gtest/gtest.h>

#include "accounting_helpers.h"

#include "tsp_test_model.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/single/single.h"
#include "parallel/tsp/tsp.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

constexpr int64_t kBatch = 2, kSeq = 24;

ModelConfig make_config(bool tied) {
  return test::tsp_test_config(tied, 2);
}

template <class T>
void check_state(bool tied) {
  SCOPED_TRACE(std::string(tied ? "tied" : "untied") + (sizeof(T) == 8 ? " double" : " float"));
  Communicator comm = Communicator::world();
  const int64_t D = comm.size(), beta = sizeof(T);
  const ModelConfig c = make_config(tied);
  const int64_t L = c.num_hidden_layers, h = c.hidden_size, parts = tied ? 1 : 2;
  const int64_t layers = L * ((2 * c.q_dim() + 2 * c.kv_dim()) * h + 3 * h * c.intermediate_size);
  const int64_t norms = (2 * L + 1) * h, vocab_padded = (c.vocab_size + D - 1) / D * D;

  const MemStats s0 = mem_stats();
  ModelParams<T> full(c, ShardSpec::full(c));
  const MemStats s1 = mem_stats();
  TspStrategy<T> tsp(comm);
  ModelParams<T> shard(c, tsp.shard_spec(c));
  const MemStats s2 = mem_stats();
  AdamW<T> opt(shard, kernels::AdamWHyper{});
  const MemStats s3 = mem_stats();

  const int64_t single_params = beta * (layers + parts * c.vocab_size * h + norms);
  const int64_t tsp_params = beta * (layers / D + parts * vocab_padded / D * h + norms);
  EXPECT_EQ(test::mem_delta(s1, s0, Mem::parameters), single_params);
  EXPECT_EQ(test::mem_delta(s1, s0, Mem::gradients), single_params);
  EXPECT_EQ(test::mem_delta(s2, s1, Mem::parameters), tsp_params);
  EXPECT_EQ(test::mem_delta(s2, s1, Mem::gradients), tsp_params);
  EXPECT_EQ(test::mem_delta(s3, s2, Mem::optimizer), 2 * tsp_params);
  // The same statement from the single-device figure: the sharded part / D, the vocabulary with its padding,
  // the norms replicated.
  EXPECT_EQ(tsp_params, (single_params - beta * (norms + parts * c.vocab_size * h)) / D +
                            beta * (parts * vocab_padded * h / D + norms));
}

struct StepMemory {
  int64_t activations = 0, communication = 0, communication_peak = 0, workspace = 0;
};

// Builds the model, runs one training step, and returns what the strategy and transformer allocated.
// Also checks that a second step of the same shape allocates nothing (buffers are reused).
template <class T>
StepMemory measure_step(const ModelConfig& c, Strategy<T>& strategy) {
  ModelParams<T> params(c, strategy.shard_spec(c));
  params.init(1);
  Transformer<T> model(params, strategy);
  std::vector<int32_t> tokens, targets;
  test::accounting_batch(c.vocab_size, kBatch * kSeq, tokens, targets);

  const MemStats before = mem_stats();
  mem_reset_peaks();
  model.forward(tokens.data(), targets.data(), kBatch, kSeq);
  model.backward();
  const MemStats after = mem_stats();
  StepMemory m;
  m.activations = test::mem_delta(after, before, Mem::activations);
  m.communication = test::mem_delta(after, before, Mem::communication);
  m.communication_peak = after.peak[size_t(Mem::communication)] - before.current[size_t(Mem::communication)];
  m.workspace = test::mem_delta(after, before, Mem::workspace);

  mem_reset_peaks();
  params.zero_grads();
  model.forward(tokens.data(), targets.data(), kBatch, kSeq);
  model.backward();
  const MemStats again = mem_stats();
  for (int k = 0; k < kMemCategories; ++k)
    EXPECT_EQ(again.peak[size_t(k)], after.current[size_t(k)])
        << "second step allocated " << mem_name(Mem(k));
  return m;
}

template <class T>
void check_step(bool keep_kv) {
  SCOPED_TRACE(std::string(keep_kv ? "keep_kv" : "regather") + (sizeof(T) == 8 ? " double" : " float"));
  Communicator comm = Communicator::world();
  const int64_t D = comm.size(), beta = sizeof(T);
  const ModelConfig c = make_config(false);
  const int64_t L = c.num_hidden_layers, h = c.hidden_size, I = c.intermediate_size;
  const int64_t nh = c.num_attention_heads, qd = c.q_dim(), kvd = c.kv_dim();
  const int64_t Nf = kBatch * kSeq, N = Nf / D;

  SingleStrategy<T> single;
  const StepMemory ref = measure_step<T>(c, single);
  TspStrategy<T> tsp(comm, TspOptions{keep_kv});
  const StepMemory got = measure_step<T>(c, tsp);

  const int64_t transformer_saved = (2 * L + 1) * (h + 1);  // per token
  EXPECT_EQ(ref.activations, beta * (Nf * transformer_saved + L * Nf * (2 * qd + 2 * kvd + nh + 2 * I) + Nf));
  const int64_t kept = keep_kv ? L * 2 * kBatch * kSeq * kvd : 0;
  EXPECT_EQ(got.activations, beta * (N * transformer_saved + L * N * (qd + nh) + N + kept));
  if (!keep_kv) {
    EXPECT_LE(got.activations * D, ref.activations);
  }

  const int64_t W_a = (2 * qd + 2 * kvd) * h / D, W_m = 3 * h * I / D;
  const int64_t P_v = (c.vocab_size + D - 1) / D * h;
  const int64_t comm_bytes = beta * (3 * W_a + 2 * kBatch * kSeq * kvd / D + 4 * W_m + 4 * P_v);
  EXPECT_EQ(ref.communication_peak, 0);
  EXPECT_EQ(got.communication, comm_bytes);
  EXPECT_EQ(got.communication_peak, comm_bytes);

  if (comm.rank() == 0)
    std::printf(
        "[memory] D=%lld %s %s: activations single %lld B, tsp %lld B (x%.2f less); communication %lld B; "
        "workspace single %lld B, tsp %lld B\n",
        (long long)D, sizeof(T) == 8 ? "double" : "float", keep_kv ? "keep_kv" : "regather",
        (long long)ref.activations, (long long)got.activations,
        double(ref.activations) / double(got.activations), (long long)got.communication,
        (long long)ref.workspace, (long long)got.workspace);
}

TEST(TspMemory, ParametersGradientsOptimizerAreOneOverD) {
  check_state<double>(false);
  check_state<double>(true);
  check_state<float>(false);
}

TEST(TspMemory, ActivationsAndCommunicationBuffers) {
  check_step<double>(false);
  check_step<double>(true);
  check_step<float>(false);
}

}  // namespace
}  // namespace tsp

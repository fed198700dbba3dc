// mpi-ranks: 1 2 3 4
// The mesh engine's memory per rank, from the tracked allocator, equals the formulas of docs/layouts.md, in
// elements × β = sizeof(T). T x Σ mesh, n = B·S/Σ group tokens, n_l = n/T under Megatron-SP (msp) else n,
// q_t = q_dim/T, kv_t = kv_dim/T, nh_t = n_h/T, I_t = I/T, V_t = ceil(V/T), parts = 1 tied / 2 untied:
//   parameters = gradients = L·((2·q_t + 2·kv_t)·h + 3·h·I_t) + parts·V_t·h + (2L+1)·h; optimizer = 2×.
//   activations = (2L+1)·n_l·(h+1) [transformer: norm inputs, inverse RMS] + L·n·(q_t + nh_t) [o, lse]
//                 + n [the loss' log-sum-exp].
//   communication = [T>1]·(n·h + [msp]·n_l·h + 4·T·n) + [Σ>1]·2·B·S·kv_t, allocated once (also the peak).
//   workspace = 4·n_l·h [transformer] + [msp]·3·n·h + 3·n·q_t + 4·B·S·kv_t + [Σ>1]·2·n·kv_t + 6·n·I_t
//               + 4·n + 2·n·V_t.
#include <gtest/gtest.h>

#include "accounting_helpers.h"

#include "mesh_test_model.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

constexpr int64_t kBatch = 2, kSeq = 24;

template <class T>
void check_layout(const test::MeshLayoutCase& layout, bool tied) {
  SCOPED_TRACE(layout.label() + (tied ? " tied" : " untied") + (sizeof(T) == 8 ? " double" : " float"));
  Communicator comm = Communicator::world();
  const ModelConfig c = test::mesh_test_config(tied, 2);
  const int64_t Tp = layout.tp, Sg = layout.sp, beta = sizeof(T);
  const bool msp = layout.sequence_parallel && Tp > 1;
  const int64_t L = c.num_hidden_layers, h = c.hidden_size, parts = tied ? 1 : 2;
  const int64_t q_t = c.q_dim() / Tp, kv_t = c.kv_dim() / Tp, nh_t = c.num_attention_heads / Tp;
  const int64_t I_t = c.intermediate_size / Tp, V_t = (c.vocab_size + Tp - 1) / Tp;
  const int64_t n = kBatch * kSeq / Sg, n_l = msp ? n / Tp : n, BS = kBatch * kSeq;

  auto mesh = make_replica_strategy<T>(layout.strategy, comm, layout.options());
  const MemStats s0 = mem_stats();
  ModelParams<T> params(c, mesh->shard_spec(c));
  const MemStats s1 = mem_stats();
  AdamW<T> opt(params, kernels::AdamWHyper{});
  const MemStats s2 = mem_stats();
  const int64_t param_bytes =
      beta * (L * ((2 * q_t + 2 * kv_t) * h + 3 * h * I_t) + parts * V_t * h + (2 * L + 1) * h);
  EXPECT_EQ(test::mem_delta(s1, s0, Mem::parameters), param_bytes);
  EXPECT_EQ(test::mem_delta(s1, s0, Mem::gradients), param_bytes);
  EXPECT_EQ(test::mem_delta(s2, s1, Mem::optimizer), 2 * param_bytes);

  params.init(1);
  Transformer<T> model(params, *mesh);
  std::vector<int32_t> tokens, targets;
  test::accounting_batch(c.vocab_size, kBatch * kSeq, tokens, targets);
  const MemStats before = mem_stats();
  mem_reset_peaks();
  model.forward(tokens.data(), targets.data(), kBatch, kSeq);
  model.backward();
  opt.step(*mesh, 1e-3, 1.0);
  const MemStats after = mem_stats();

  const int64_t activations = (2 * L + 1) * n_l * (h + 1) + L * n * (q_t + nh_t) + n;
  const int64_t communication =
      (Tp > 1 ? n * h + (msp ? n_l * h : 0) + 4 * Tp * n : 0) + (Sg > 1 ? 2 * BS * kv_t : 0);
  const int64_t workspace = 4 * n_l * h + (msp ? 3 * n * h : 0) + 3 * n * q_t + 4 * BS * kv_t +
                            (Sg > 1 ? 2 * n * kv_t : 0) + 6 * n * I_t + 4 * n + 2 * n * V_t;
  EXPECT_EQ(test::mem_delta(after, before, Mem::activations), beta * activations);
  EXPECT_EQ(test::mem_delta(after, before, Mem::communication), beta * communication);
  EXPECT_EQ(test::mem_delta(after, before, Mem::workspace), beta * workspace);
  // Everything is allocated once for the step shape: the peaks are the allocations.
  for (Mem m : {Mem::activations, Mem::communication, Mem::workspace, Mem::parameters, Mem::gradients})
    EXPECT_EQ(after.peak[size_t(m)], after.current[size_t(m)]) << mem_name(m);

  // A second step of the same shape allocates nothing.
  mem_reset_peaks();
  params.zero_grads();
  model.forward(tokens.data(), targets.data(), kBatch, kSeq);
  model.backward();
  const MemStats again = mem_stats();
  for (int k = 0; k < kMemCategories; ++k)
    EXPECT_EQ(again.peak[size_t(k)], after.current[size_t(k)])
        << "second step allocated " << mem_name(Mem(k));
  if (comm.rank() == 0 && sizeof(T) == 8 && !tied)
    std::printf(
        "[memory] %s: parameters %lld B, activations %lld B, communication %lld B, workspace %lld B\n",
        layout.label().c_str(), (long long)param_bytes, (long long)(beta * activations),
        (long long)(beta * communication), (long long)(beta * workspace));
}

TEST(MeshMemory, MatchesFormulas) {
  for (const auto& layout : test::mesh_layouts(Communicator::world().size())) {
    check_layout<double>(layout, false);
    check_layout<double>(layout, true);
    check_layout<float>(layout, false);
  }
}

}  // namespace
}  // namespace tsp

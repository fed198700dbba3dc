// mpi-ranks: 1 2 3 4
// The planner against the runtime (issue: "predict and measure"): for every layout the planner lists at this
// rank count — single, tp, tp-sp, sp, every tpsp factorisation, tsp (also with keep_gathered_kv), and on 4
// ranks data parallelism around tsp, tp and single with and without ZeRO-1 — one real training step
// (forward, backward, AdamW) is measured and compared with plan::predict in the runtime policy:
//   - every (phase, label) communication counter: op, calls, payload and received bytes EXACTLY equal;
//   - allocator peaks of parameters, gradients, optimizer state, saved activations and communication buffers
//     exactly equal, and workspace (per-step scratch) within 2 % (the planner counts the named scratch
//     buffers; docs/planning.md says which small kernel scratch it leaves out).
// Every case runs under three precision policies: float32; the bf16 policy (--dtype bf16: bf16 weights,
// saved activations and activation/weight traffic, fp32 master and gradients); and the bf16 policy with bf16
// AdamW moments and bf16 gradient sums (--optimizer-dtype bf16 --grad-reduce-dtype bf16), each against
// plan::Policy::runtime / runtime_bf16.
// Models: the `tiny` and `small` presets, and a config whose heads, KV heads and intermediate size divide by
// 1-4 with a vocabulary that needs padding (so that 3 ranks run every layout), at two sequence lengths each;
// and Qwen2 (q/k/v biases) and Qwen3 (q/k norms) configs with 1 and 2 KV heads, which every layout with
// T or D > n_kv runs with replicated KV heads (tests/arch_test_configs.h).
#include <gtest/gtest.h>

#include "../arch_test_configs.h"
#include "tsp_test_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "core/precision.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "plan/plan.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

struct Case {
  std::string model;
  ModelConfig config;
  int64_t batch, seq_len;
};

std::vector<Case> cases() {
  return {{"tiny", preset_config("tiny"), 2, 48},
          {"tiny", preset_config("tiny"), 1, 192},
          {"small", preset_config("small"), 1, 96},
          {"divisible", test::tsp_test_config(false, 2), 2, 24},
          {"divisible_tied", test::tsp_test_config(true, 2), 1, 120},
          {"qwen2_kv1", test::with_model_type(test::arch_base_config(1), "qwen2"), 2, 24},
          {"qwen3_kv2_tied", test::with_model_type(test::arch_base_config(2, 2, true), "qwen3"), 1, 48}};
}

StrategyOptions runtime_options(const plan::LayoutSpec& l) {
  StrategyOptions o;
  if (l.kind == plan::Kind::tpsp) {
    o.tp = l.tp;
    o.sp = l.sp;
  }
  o.sequence_parallel = l.sequence_parallel;
  o.keep_gathered_kv = l.keep_gathered_kv;
  o.dp = l.dp;
  o.zero1 = l.zero1;
  return o;
}

std::string strategy_name(const plan::LayoutSpec& l) {
  switch (l.kind) {
    case plan::Kind::single:
      return "single";
    case plan::Kind::tp:
      return "tp";
    case plan::Kind::sp:
      return "sp";
    case plan::Kind::tpsp:
      return "tpsp";
    case plan::Kind::tsp:
      return "tsp";
  }
  return "?";
}

// Every layout to measure on `ranks` ranks.
std::vector<plan::LayoutSpec> layouts(int ranks) {
  std::vector<plan::LayoutSpec> out = plan::layouts_for(ranks, 1, false);
  if (ranks > 1) out.push_back(plan::LayoutSpec::make_tsp(ranks, /*keep_gathered_kv=*/true));
  if (ranks == 4) {
    for (bool zero1 : {false, true}) {
      for (plan::LayoutSpec l : {plan::LayoutSpec::make_tsp(2), plan::LayoutSpec::make_tp(2),
                                 plan::LayoutSpec::make_tp(2, true), plan::LayoutSpec::single()}) {
        l.dp = l.ranks() == 1 ? 4 : 2;
        l.zero1 = zero1;
        out.push_back(l);
      }
    }
  }
  return out;
}

kernels::MatmulPrecision products_for_bf16() {
  return kernels::onednn::bf16_supported() ? kernels::MatmulPrecision::bf16 : kernels::MatmulPrecision::fp32;
}

void make_batch(int64_t vocab, int64_t n, std::vector<int32_t>& tokens, std::vector<int32_t>& targets) {
  std::mt19937 rng(11);
  tokens.resize(size_t(n));
  targets.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) tokens[size_t(i)] = int32_t(rng() % uint32_t(vocab));
  for (int64_t i = 0; i < n; ++i) targets[size_t(i)] = i + 1 < n ? tokens[size_t(i + 1)] : -100;
}

// One measured step of layout `l`; returns (comm counters, per-category peaks above the starting point).
void measure(const Case& k, const plan::LayoutSpec& l, Communicator& world, CommStats& comm,
             std::array<int64_t, kMemCategories>& peaks) {
  const ModelConfig& c = k.config;
  const MemStats before = mem_stats();
  mem_reset_peaks();
  {
    auto s = make_strategy<float>(strategy_name(l), world, runtime_options(l));
    ModelParams<float> p(c, s->shard_spec(c));
    p.init(3);
    AdamW<float> opt(p, kernels::AdamWHyper{}, s.get());
    Transformer<float> model(p, *s);
    const int64_t global_batch = k.batch * l.dp;
    std::vector<int32_t> tokens, targets;
    make_batch(c.vocab_size, global_batch * k.seq_len, tokens, targets);
    if (s->comm()) s->comm()->reset_stats();
    p.zero_grads();
    model.forward(tokens.data(), targets.data(), global_batch, k.seq_len);
    model.backward();
    s->set_phase("optimizer");
    opt.step(*s, 1e-3, 1.0);
    comm = s->comm() ? s->comm()->stats() : CommStats{};
    const MemStats m = mem_stats();
    for (int i = 0; i < kMemCategories; ++i) peaks[size_t(i)] = m.peak[size_t(i)] - before.current[size_t(i)];
  }
}

struct PolicyCase {
  std::string name;
  PrecisionPolicy runtime;
  plan::Policy plan;
};

std::vector<PolicyCase> policies() {
  PrecisionPolicy bf16, bf16_all;
  bf16.bf16 = bf16_all.bf16 = bf16_all.bf16_moments = bf16_all.bf16_grad_reduce = true;
  return {{"float32", PrecisionPolicy{}, plan::Policy::runtime(sizeof(float))},
          {"bf16", bf16, plan::Policy::runtime_bf16()},
          {"bf16 + bf16 moments and gradient sums", bf16_all, plan::Policy::runtime_bf16(true, true)}};
}

TEST(PlanAgreement, MeasuredCommunicationAndMemoryEqualThePrediction) {
  Communicator world = Communicator::world();
  int measured = 0;
  double worst_workspace = 0;  // largest relative workspace residual seen (reported, not asserted beyond 2 %)
  // The policy's products are bf16 where oneDNN has them; the bytes do not depend on it.
  kernels::ScopedMatmulPrecision restore(kernels::matmul_precision());
  for (const PolicyCase& pc : policies())
    for (const Case& k : cases()) {
      for (const plan::LayoutSpec& l : layouts(world.size())) {
        if (l.ranks() * l.dp != world.size()) continue;
        const plan::Prediction want = plan::predict(k.config, l, plan::RunShape{k.batch, k.seq_len}, pc.plan);
        if (!want.applicable) continue;  // e.g. heads not divisible by T, or S not a multiple of the layout's
        ScopedPrecisionPolicy policy(pc.runtime);
        if (pc.runtime.bf16)
          kernels::set_matmul_precision(products_for_bf16());
        else
          kernels::set_matmul_precision(kernels::MatmulPrecision::fp32);
        const std::string what = pc.name + ": " + k.model + " B=" + std::to_string(k.batch) +
                                 " S=" + std::to_string(k.seq_len) + " " + l.runtime_flags();
        SCOPED_TRACE(what);
        CommStats got;
        std::array<int64_t, kMemCategories> peaks{};
        measure(k, l, world, got, peaks);
        ++measured;

        // Communication: the same set of (phase, label) with the same counts, to the byte.
        for (const auto& [phase, labels] : want.comm)
          for (const auto& [label, e] : labels) {
            if (e.calls == 0) continue;
            ASSERT_TRUE(got.count(phase) && got.at(phase).count(label))
                << "missing " << phase << " " << label;
            const CommCounter& g = got.at(phase).at(label);
            EXPECT_EQ(g.op, e.op) << phase << " " << label;
            EXPECT_EQ(g.calls, e.calls) << phase << " " << label;
            EXPECT_EQ(g.payload_bytes, e.payload_bytes) << phase << " " << label;
            EXPECT_EQ(g.recv_bytes, e.recv_bytes) << phase << " " << label;
          }
        for (const auto& [phase, labels] : got)
          for (const auto& [label, g] : labels) {
            const bool predicted = want.comm.count(phase) && want.comm.at(phase).count(label);
            EXPECT_TRUE(predicted) << "unpredicted " << phase << " " << label << " (" << g.calls << " calls, "
                                   << g.recv_bytes << " bytes received)";
          }

        // Memory: exact for what is allocated once; workspace within 2 %.
        auto peak = [&](Mem m) { return peaks[size_t(m)]; };
        EXPECT_EQ(peak(Mem::parameters), want.memory.parameters);
        EXPECT_EQ(peak(Mem::gradients), want.memory.gradients);
        EXPECT_EQ(peak(Mem::optimizer), want.memory.optimizer);
        EXPECT_EQ(peak(Mem::activations), want.memory.activations);
        EXPECT_EQ(peak(Mem::communication), want.memory.communication);
        worst_workspace =
            std::max(worst_workspace, std::abs(double(peak(Mem::workspace) - want.memory.workspace)) /
                                          double(std::max<int64_t>(1, peak(Mem::workspace))));
        EXPECT_NEAR(double(peak(Mem::workspace)), double(want.memory.workspace),
                    0.02 * double(peak(Mem::workspace)))
            << "workspace measured " << peak(Mem::workspace) << " predicted " << want.memory.workspace;
      }
    }
  if (world.rank() == 0)
    std::printf("[plan agreement] %d layout x shape cases on %d ranks; worst workspace residual %.2f%%\n",
                measured, world.size(), 100.0 * worst_workspace);
  // Every rank count measures several layouts (3 ranks: the divisible config under every layout).
  EXPECT_GE(measured, 3 * (world.size() == 1 ? 5 : 10));
}

}  // namespace
}  // namespace tsp

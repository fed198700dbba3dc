// mpi-ranks: 1 2
// tsp bench through run_bench / run_compare: the document's fields, one entry per rank, communication equal
// to that of the same layout counted in a plain training step, memory per category, a time split that adds up
// to the step time, and --compare's entry syntax, peak resets and ratios. On 1 rank the layout is single
// (and tsp on one rank); on 2, tsp.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "bench/bench_run.h"
#include "bench/compare.h"
#include "comm/comm_report.h"
#include "core/check.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

BenchOptions tiny_bench(const std::string& strategy) {
  BenchOptions o;
  o.model = preset_config("tiny");
  o.strategy = strategy;
  o.seq_len = 64;
  o.batch = 2;
  o.steps = 2;
  o.warmup = 1;
  o.sgemm_n = 64;  // the ceiling's size does not matter here; keep the test fast
  o.sgemm_reps = 1;
  return o;
}

// The same layout, shape and batch as run_bench, one training step counted by the communicator alone.
CommStats plain_step_comm(const BenchOptions& o, Communicator& world) {
  auto s = make_strategy<float>(o.strategy, world, o.layout);
  ModelParams<float> p(o.model, s->shard_spec(o.model));
  p.init(o.seed);
  AdamW<float> opt(p, {}, s.get());
  Transformer<float> model(p, *s);
  std::vector<int32_t> tokens(size_t(o.batch * o.seq_len)), targets(tokens.size());
  std::mt19937 rng(3);
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = int32_t(rng() % uint32_t(o.model.vocab_size));
    targets[i] = int32_t(rng() % uint32_t(o.model.vocab_size));
  }
  if (s->comm()) s->comm()->reset_stats();
  p.zero_grads();
  model.forward(tokens.data(), targets.data(), o.batch, o.seq_len);
  model.backward();
  s->set_phase("optimizer");
  opt.step(*s, 1e-4, 1.0);
  return s->comm() ? s->comm()->stats() : CommStats{};
}

void expect_entry_consistent(const nlohmann::json& doc, int ranks, bool forward_only) {
  for (const char* k : {"strategy", "ranks", "seq_len", "batch", "tokens_per_s", "step_seconds",
                        "model_flops_per_s", "sgemm_flops_per_s", "per_rank"})
    EXPECT_TRUE(doc.contains(k)) << k;
  EXPECT_EQ(doc["ranks"].get<int>(), ranks);
  ASSERT_EQ(int(doc["per_rank"].size()), ranks);
  EXPECT_GT(doc["tokens_per_s"].get<double>(), 0);
  EXPECT_GT(doc["sgemm_flops_per_s"].get<double>(), 0);
  EXPECT_NEAR(doc["model_flops_per_s"].get<double>() * doc["step_seconds"].get<double>(),
              doc["model_flops_per_step"].get<double>(), 1e-6 * doc["model_flops_per_step"].get<double>());
  double max_step = 0;
  for (int r = 0; r < ranks; ++r) {
    SCOPED_TRACE("per_rank entry " + std::to_string(r));
    const auto& e = doc["per_rank"][size_t(r)];
    EXPECT_EQ(e["rank"].get<int>(), r);
    const auto& m = e["memory_peak_bytes"];
    for (const char* k : {"parameters", "activations", "workspace"}) EXPECT_GT(m[k].get<int64_t>(), 0) << k;
    if (forward_only) {
      EXPECT_EQ(m["gradients"].get<int64_t>(), 0);
      EXPECT_EQ(m["optimizer"].get<int64_t>(), 0);
    } else {
      EXPECT_EQ(m["gradients"].get<int64_t>(), m["parameters"].get<int64_t>());
      EXPECT_EQ(m["optimizer"].get<int64_t>(), 2 * m["parameters"].get<int64_t>());
    }
    EXPECT_GE(m["total"].get<int64_t>(), m["parameters"].get<int64_t>() + m["activations"].get<int64_t>());
    EXPECT_GT(m["vmhwm"].get<int64_t>(), m["total"].get<int64_t>());
    const auto& s = e["seconds"];
    const double step = s["step"].get<double>();
    EXPECT_GT(step, 0);
    EXPECT_GE(s["comm_exposed"].get<double>(), 0);
    EXPECT_GE(s["idle"].get<double>(), 0);
    EXPECT_GT(s["compute"].get<double>(), 0);
    EXPECT_NEAR(s["compute"].get<double>() + s["comm_exposed"].get<double>() + s["idle"].get<double>(), step,
                1e-9 * (1 + step));
    max_step = std::max(max_step, step);
  }
  EXPECT_DOUBLE_EQ(doc["step_seconds"].get<double>(), max_step);
}

TEST(Bench, TrainingStepFieldsCommAndMemory) {
  Communicator world = Communicator::world();
  const BenchOptions o = tiny_bench(world.size() == 1 ? "single" : "tsp");
  const nlohmann::json doc = run_bench(o, world);
  expect_entry_consistent(doc, world.size(), false);
  EXPECT_EQ(doc["mode"], "train");
  EXPECT_EQ(doc["steps"].get<int64_t>(), 2);

  // Per step, the bench counts exactly what one plain step of the same layout moves (bytes and calls; the
  // seconds differ).
  const CommStats plain = plain_step_comm(o, world);
  nlohmann::json want = comm_stats_json(plain), got = doc["per_rank"][size_t(world.rank())]["comm"];
  for (auto* j : {&want, &got})
    for (auto& [phase, labels] : j->items())
      for (auto& [label, c] : labels.items()) c.erase("seconds");
  EXPECT_EQ(got, want);
  if (world.size() > 1) {
    EXPECT_TRUE(got["backward"].contains("attn.kv_grad_reducescatter"));
    EXPECT_GT(doc["comm_recv_bytes_per_step_max"].get<int64_t>(), 0);
  }
}

TEST(Bench, ForwardOnlyAllocatesNoGradientsOrOptimizer) {
  Communicator world = Communicator::world();
  BenchOptions o = tiny_bench("tsp");
  o.forward_only = true;
  const nlohmann::json doc = run_bench(o, world);
  expect_entry_consistent(doc, world.size(), true);
  EXPECT_EQ(doc["mode"], "forward");
  for (const auto& [phase, labels] : doc["per_rank"][0]["comm"].items()) EXPECT_EQ(phase, "forward");
  // Prefill FLOPs: 2·P_m·tokens + 2·S²·q_dim·L·B, a third of the training step's matrix work.
  const ModelConfig& c = o.model;
  const double attn = double(o.seq_len * o.seq_len) * double(c.q_dim() * c.num_hidden_layers * o.batch);
  EXPECT_NEAR(model_flops_per_step(c, o.batch, o.seq_len, false) - 7 * attn,
              3 * (model_flops_per_step(c, o.batch, o.seq_len, true) - 2 * attn), 1e-6);
}

TEST(Bench, BadOptionsAreUsageErrors) {
  Communicator world = Communicator::world();
  BenchOptions o = tiny_bench("tsp");
  o.steps = 0;
  EXPECT_THROW(run_bench(o, world), UsageError);
  o = tiny_bench("tsp");
  o.warmup = -1;
  EXPECT_THROW(run_bench(o, world), UsageError);
  o = tiny_bench("tsp");
  o.dtype = "bfloat16";
  EXPECT_THROW(run_bench(o, world), UsageError);
  o = tiny_bench("megatron");
  EXPECT_THROW(run_bench(o, world), UsageError);
}

TEST(BenchCompare, EntrySyntax) {
  StrategyOptions base;
  base.dp = 1;
  auto l = parse_compare_list("tp, tp+sp,tp-sp,tpsp:2x3+sp,tsp+kv,sp", base);
  ASSERT_EQ(l.size(), 6u);
  EXPECT_EQ(l[0].strategy, "tp");
  EXPECT_FALSE(l[0].layout.sequence_parallel);
  EXPECT_TRUE(l[1].layout.sequence_parallel);
  EXPECT_TRUE(l[2].layout.sequence_parallel);
  EXPECT_EQ(l[2].label, "tp-sp");
  EXPECT_EQ(l[3].strategy, "tpsp");
  EXPECT_EQ(l[3].layout.tp, 2);
  EXPECT_EQ(l[3].layout.sp, 3);
  EXPECT_TRUE(l[3].layout.sequence_parallel);
  EXPECT_TRUE(l[4].layout.keep_gathered_kv);
  EXPECT_EQ(l[5].strategy, "sp");
  for (const char* bad : {"megatron", "tp:2x2", "tsp+sp", "tp+kv", "tpsp:0x2", "tpsp:2", "tpsp:2xa",
                          "tsp,,tp", "", "tsp+", "tsp+kv+zz"})
    EXPECT_THROW(parse_compare_list(bad, base), UsageError) << bad;
  try {
    parse_compare_list("tsp,megatron", base);
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("unknown layout 'megatron'"), std::string::npos) << e.what();
  }
}

TEST(BenchCompare, LayoutsInTurnWithFreshPeaks) {
  Communicator world = Communicator::world();
  const BenchOptions o = tiny_bench("tsp");
  const nlohmann::json doc = run_compare(o, parse_compare_list("tsp,tsp+kv,tsp", {}), world);
  ASSERT_EQ(doc["layouts"].size(), 3u);
  ASSERT_EQ(doc["ratios"].size(), 3u);
  EXPECT_EQ(doc["baseline"], "tsp");
  EXPECT_DOUBLE_EQ(doc["ratios"][0]["tokens_per_s"].get<double>(), 1.0);
  for (const auto& d : doc["layouts"]) expect_entry_consistent(d, world.size(), false);
  // Peaks belong to each layout alone: the third run (tsp again) peaks exactly where the first did, not on
  // top of the buffers of the runs before it.
  for (int r = 0; r < world.size(); ++r) {
    const auto& a = doc["layouts"][0]["per_rank"][size_t(r)]["memory_peak_bytes"];
    const auto& c = doc["layouts"][2]["per_rank"][size_t(r)]["memory_peak_bytes"];
    for (const char* k :
         {"parameters", "gradients", "optimizer", "activations", "communication", "workspace", "total"})
      EXPECT_EQ(a[k].get<int64_t>(), c[k].get<int64_t>()) << k;
  }
  EXPECT_DOUBLE_EQ(doc["ratios"][2]["memory_peak_bytes_max"].get<double>(), 1.0);
  if (world.size() > 1) {
    // Keeping the gathered K/V skips the backward's re-gather: less traffic, more memory.
    EXPECT_LT(doc["ratios"][1]["comm_recv_bytes_per_step_max"].get<double>(), 1.0);
    EXPECT_GT(doc["ratios"][1]["memory_peak_bytes_max"].get<double>(), 1.0);
    EXPECT_DOUBLE_EQ(doc["ratios"][2]["comm_recv_bytes_per_step_max"].get<double>(), 1.0);
  }
}

}  // namespace
}  // namespace tsp

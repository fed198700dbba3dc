// mpi-ranks: 1 2 3 4
// The planner's inference model against a real generation, for every serving layout the planner lists at
// this rank count (single, tp, sp, every tpsp mesh, tsp with both KV layouts), also with one KV head
// replicated over a head split (model/params.h): the KV-cache bytes per rank
// (allocator category kv_cache) and the parameters equal plan::predict_inference exactly, and so does every
// decode (label: op, calls, payload, received bytes) over the decode steps. No weight moves in decode: every
// label counted in the decode phase is a decode.* label, while the prefill runs the layout's training
// schedule (for TSP: attention broadcasts, K/V all-gather, the MLP and vocabulary rings). Also under the bf16
// policy (--dtype bf16): the KV cache and the weights in bf16.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "../arch_test_configs.h"
#include "comm/communicator.h"
#include "core/memory.h"
#include "core/precision.h"
#include "infer/generator.h"
#include "mesh_test_model.h"
#include "model/params.h"
#include "parallel/registry.h"
#include "plan/inference.h"

namespace tsp {
namespace {

StrategyOptions runtime_options(const plan::ServeLayout& s) {
  StrategyOptions o;
  if (s.layout.kind == plan::Kind::tpsp) {
    o.tp = s.layout.tp;
    o.sp = s.layout.sp;
  }
  return o;
}

std::string strategy_name(plan::Kind k) {
  switch (k) {
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

template <class T>
void run_case(const plan::ServeLayout& s, const ModelConfig& c, int64_t batch, int64_t prompt,
              int64_t new_tokens, bool balanced = true) {
  const bool bf16 = bf16_storage<T>();
  SCOPED_TRACE(s.name() + " batch " + std::to_string(batch) +
               (sizeof(T) == 8 ? " double"
                : bf16         ? " bf16 policy"
                               : " float"));
  Communicator world = Communicator::world();
  auto strategy = make_replica_strategy<T>(strategy_name(s.layout.kind), world, runtime_options(s));
  ModelParams<T> params(c, strategy->shard_spec(c), /*with_grads=*/false);
  params.init(5);
  DecodeOptions d;
  d.kv_layout = s.kv;
  Generator<T> gen(params, *strategy, d);
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch), std::vector<int32_t>(size_t(prompt)));
  for (auto& p : prompts)
    for (auto& t : p) t = int32_t(rng() % uint32_t(c.vocab_size));
  GenerateOptions o;
  o.max_new_tokens = new_tokens;
  if (Communicator* cm = strategy->comm()) cm->reset_stats();
  gen.generate(prompts, o);

  const plan::InferencePrediction want =
      plan::predict_inference(c, s, plan::ServeRequestShape{batch, prompt, prompt + new_tokens},
                              bf16 ? plan::Policy::runtime_bf16() : plan::Policy::runtime(int(sizeof(T))));
  ASSERT_TRUE(want.applicable) << want.reason;
  EXPECT_EQ(gen.stats().kv_cache_bytes, want.kv_cache);
  EXPECT_EQ(mem_stats().current[size_t(Mem::kv_cache)], want.kv_cache);
  EXPECT_EQ(gen.stats().context, want.kv_context);
  // Under the bf16 policy the weights are held in bf16 alone (model/params.h: the values are address space).
  EXPECT_EQ(bf16 ? params.bf16_bytes() : params.local_numel() * int64_t(sizeof(T)), want.parameters);
  EXPECT_EQ(params.bf16_bytes(), bf16 ? params.local_numel() * 2 : 0);
  EXPECT_EQ(params.bf16_only(), bf16);

  const int64_t steps = gen.stats().decode_steps;
  ASSERT_EQ(steps, new_tokens - 1);
  Communicator* cm = strategy->comm();
  // A copy: the checks below communicate themselves (test.sum).
  const CommStats got = cm ? cm->stats() : CommStats{};
  auto dec = got.find("decode");
  const auto& want_dec =
      want.comm.count("decode") ? want.comm.at("decode") : std::map<std::string, plan::CommEntry>{};
  if (dec == got.end()) {
    EXPECT_TRUE(want_dec.empty()) << "the runtime counted no decode communication";
  } else {
    for (const auto& [label, e] : dec->second) {
      EXPECT_EQ(label.rfind("decode.", 0), 0u) << "weight or other traffic in decode: " << label;
      auto w = want_dec.find(label);
      ASSERT_NE(w, want_dec.end()) << "the planner misses " << label;
      EXPECT_EQ(e.op, w->second.op) << label;
      EXPECT_EQ(e.calls, w->second.calls * steps) << label;
      if (!balanced && label == "decode.kv_to_owner") {
        // Fewer rows than ranks: the owners of the new rows take turns, so one rank's bytes depend on the
        // step; the planner's figure is the mean over the ranks (rounded down to whole bytes).
        int64_t sums[2] = {e.payload_bytes, e.recv_bytes};
        cm->all_reduce("test.sum", sums, 2);
        const int64_t D = cm->size();
        for (int64_t k = 0; k < 2; ++k) {
          const int64_t planned = k == 0 ? w->second.payload_bytes : w->second.recv_bytes;
          EXPECT_LE(D * planned * steps, sums[k]) << label;
          EXPECT_LT(sums[k], D * (planned + w->second.calls) * steps) << label;
        }
        continue;
      }
      EXPECT_EQ(e.payload_bytes, w->second.payload_bytes * steps) << label;
      EXPECT_EQ(e.recv_bytes, w->second.recv_bytes * steps) << label;
    }
    for (const auto& [label, e] : want_dec)
      EXPECT_TRUE(dec->second.count(label)) << "the runtime misses " << label;
  }
  if (s.layout.kind == plan::Kind::tsp && world.size() > 1) {
    const auto& pre = got.at("prefill");
    for (const char* label : {"attn.weight_bcast", "attn.kv_allgather", "mlp.weight_ring", "vocab.ring"})
      EXPECT_TRUE(pre.count(label)) << "the TSP prefill should run its training schedule: " << label;
  }
}

TEST(DecodePlan, RuntimeMatchesThePlanner) {
  const int ranks = Communicator::world().size();
  const ModelConfig c = test::mesh_test_config(false, 2);
  const ModelConfig tied = test::mesh_test_config(true, 2, 24, 12);
  const ModelConfig replicated = test::with_model_type(test::arch_base_config(1), "qwen3");
  for (const plan::ServeLayout& s : plan::serve_layouts_for(ranks)) {
    // Equal prompts of 24 tokens (a multiple of every layout's padding), ranks x 2 sequences: each rank
    // caches the same number of the new tokens at every step (kv_cache.h's round-robin owners).
    run_case<double>(s, c, 2 * ranks, 24, 5);
    run_case<float>(s, tied, ranks, 24, 4);
    // One KV head, replicated on every rank of a head split (Qwen3's q/k norms along).
    run_case<double>(s, replicated, 2 * ranks, 24, 4);
    // One sequence on several ranks: under tsp --kv-layout sequence its new rows' owner changes every 16
    // positions (kv_cache.h), so only the sum over ranks is fixed.
    if (ranks > 1) run_case<double>(s, c, 1, 24, 40, /*balanced=*/false);
    // The bf16 policy (--dtype bf16): bf16 weights and KV cache, decode's TP sums in bf16.
    ScopedPrecisionPolicy policy(PrecisionPolicy{true, false, false});
    run_case<float>(s, tied, ranks, 24, 4);
    run_case<float>(s, replicated, 2 * ranks, 24, 4);
  }
}

}  // namespace
}  // namespace tsp

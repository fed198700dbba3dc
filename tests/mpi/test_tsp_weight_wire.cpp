// mpi-ranks: 1 2 4
// TSP with its weight shards on a bf16 wire (--weight-comm-dtype bf16) under bf16 products:
//   - the same model, bit for bit: with weights that are already bf16 values (rounded once here), the bf16
//     wire gives exactly the loss and every gradient of the fp32 wire — the products round the weights to the
//     same bits either way, the lookup reads the same values, biases (Qwen2) and norms (Qwen3) included;
//   - half the weight bytes: attn.weight_bcast, mlp.weight_ring and vocab.ring move 2 bytes per element,
//     the gradient rings and reduces still 4, and both the counters and the communication buffers equal the
//     planner's prediction with Policy::weight_wire_bytes = 2 exactly;
//   - refused where it would change the model or has nothing to move (fp32 products, other layouts).
#include <gtest/gtest.h>

#include "../arch_test_configs.h"
#include "tsp_test_model.h"

#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"
#include "core/memory.h"
#include "kernels/bf16.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "plan/plan.h"

namespace tsp {
namespace {

struct WireRun {
  double loss = 0;
  std::vector<std::vector<float>> grads;  // per parameter block
  CommStats comm;
  int64_t comm_peak = 0;  // allocator peak of communication buffers
};

WireRun run_step(const ModelConfig& c, bool wire16, int64_t batch, int64_t seq) {
  Communicator world = Communicator::world();
  StrategyOptions o;
  o.weight_comm_bf16 = wire16;
  const MemStats before = mem_stats();
  mem_reset_peaks();
  WireRun r;
  {
    auto s = make_strategy<float>("tsp", world, o);
    ModelParams<float> p(c, s->shard_spec(c));
    p.init(5);
    // Weights that are bf16 values already: rounding them again on the wire is the identity.
    for (int b = 0; b < p.num_blocks(); ++b)
      for (float& x : p.value(b).span()) x = bf16_to_float(float_to_bf16(x));
    Transformer<float> model(p, *s);
    std::mt19937 rng(3);
    std::vector<int32_t> tokens(size_t(batch * seq)), targets(tokens.size());
    for (auto& t : tokens) t = int32_t(rng() % uint32_t(c.vocab_size));
    for (size_t i = 0; i < tokens.size(); ++i) targets[i] = i + 1 < tokens.size() ? tokens[i + 1] : -100;
    s->comm()->reset_stats();
    p.zero_grads();
    r.loss = model.forward(tokens.data(), targets.data(), batch, seq).loss;
    model.backward();
    r.comm = s->comm()->stats();
    for (int b = 0; b < p.num_blocks(); ++b)
      r.grads.emplace_back(p.grad(b).span().begin(), p.grad(b).span().end());
    r.comm_peak = mem_stats().peak[size_t(Mem::communication)] - before.current[size_t(Mem::communication)];
  }
  return r;
}

struct Case {
  std::string name;
  ModelConfig config;
};

std::vector<Case> cases() {
  return {{"llama_untied", test::tsp_test_config(false, 2)},
          {"llama_tied", test::tsp_test_config(true, 2)},
          {"qwen2_biases", test::with_model_type(test::arch_base_config(2), "qwen2")},
          {"qwen3_qk_norm", test::with_model_type(test::arch_base_config(2, 2, true), "qwen3")}};
}

TEST(TspWeightWire, Bf16WireIsBitIdenticalAndHalvesTheWeightBytes) {
  if (!kernels::onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  kernels::ScopedMatmulPrecision bf16(kernels::MatmulPrecision::bf16);
  const int D = Communicator::world().size();
  const int64_t batch = 2, seq = 8 * D;
  for (const Case& k : cases()) {
    SCOPED_TRACE(k.name);
    const WireRun f32 = run_step(k.config, false, batch, seq);
    const WireRun b16 = run_step(k.config, true, batch, seq);
    EXPECT_EQ(f32.loss, b16.loss);
    ASSERT_EQ(f32.grads.size(), b16.grads.size());
    for (size_t b = 0; b < f32.grads.size(); ++b) EXPECT_EQ(f32.grads[b], b16.grads[b]) << "block " << b;

    // Counters and buffers against the planner, label by label.
    plan::Policy pol = plan::Policy::runtime(sizeof(float));
    pol.weight_wire_bytes = 2;
    const plan::Prediction want =
        plan::predict(k.config, plan::LayoutSpec::make_tsp(D), plan::RunShape{batch, seq}, pol);
    ASSERT_TRUE(want.applicable);
    for (const auto& [phase, labels] : want.comm)
      for (const auto& [label, e] : labels) {
        if (phase == "optimizer") continue;  // no optimizer step here
        ASSERT_TRUE(b16.comm.count(phase) && b16.comm.at(phase).count(label)) << phase << " " << label;
        const CommCounter& g = b16.comm.at(phase).at(label);
        EXPECT_EQ(g.calls, e.calls) << phase << " " << label;
        EXPECT_EQ(g.payload_bytes, e.payload_bytes) << phase << " " << label;
        EXPECT_EQ(g.recv_bytes, e.recv_bytes) << phase << " " << label;
      }
    EXPECT_EQ(b16.comm_peak, want.memory.communication);
    // The weight labels moved half the bytes of the fp32 wire, the gradient labels the same.
    for (const char* phase : {"forward", "backward"})
      for (const auto& [label, g] : b16.comm.at(phase)) {
        const CommCounter& f = f32.comm.at(phase).at(label);
        const bool weights =
            label == "attn.weight_bcast" || label == "mlp.weight_ring" || label == "vocab.ring";
        EXPECT_EQ((weights ? 2 : 1) * g.payload_bytes, f.payload_bytes) << phase << " " << label;
      }
    if (D > 1) {
      EXPECT_LT(b16.comm_peak, f32.comm_peak);
    }
  }
}

TEST(TspWeightWire, RefusedWhereItWouldChangeTheModelOrMovesNothing) {
  Communicator world = Communicator::world();
  StrategyOptions o;
  o.weight_comm_bf16 = true;
  {
    kernels::ScopedMatmulPrecision fp32(kernels::MatmulPrecision::fp32);
    try {
      (void)make_strategy<float>("tsp", world, o);
      FAIL() << "fp32 products accepted a bf16 weight wire";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--matmul-precision bf16"), std::string::npos) << e.what();
    }
  }
  if (world.size() == 1) {
    try {
      (void)make_strategy<float>("single", world, o);
      FAIL() << "--strategy single accepted a bf16 weight wire";
    } catch (const UsageError& e) {
      EXPECT_NE(std::string(e.what()).find("--strategy tsp only"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace tsp

// mpi-ranks: 1 2 4
// The bf16 policy (--dtype bf16, core/precision.h) in the runtime, under every layout:
//   - every read of a weight goes through its bf16 copy: masters that round to the same bf16 values give the
//     same loss, logits and gradients bit for bit (a single read of the fp32 master — a product, the
//     embedding lookup, a bias, a norm gain — would change them);
//   - a bf16 sum over the ranks (comm/communicator.h) rounds every partial sum: identical bits on every rank,
//     within (P-1) units of bf16 roundoff of the exact sum;
//   - the saved-activation stash (parallel/stash.h) holds bf16, and what the forward reads after save() is
//     exactly what the backward loads.
#include <gtest/gtest.h>

#include "../arch_test_configs.h"
#include "tsp_test_model.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/memory.h"
#include "core/precision.h"
#include "infer/generator.h"
#include "kernels/bf16.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "parallel/stash.h"

namespace tsp {
namespace {

PrecisionPolicy bf16_policy(bool grad16 = false) {
  PrecisionPolicy p;
  p.bf16 = true;
  p.bf16_grad_reduce = grad16;
  return p;
}

struct Layout {
  std::string strategy;
  StrategyOptions options;
};

std::vector<Layout> layouts(int ranks) {
  if (ranks == 1) return {{"single", {}}, {"tsp", {}}};
  std::vector<Layout> out = {{"tsp", {}}, {"tp", {}}, {"sp", {}}};
  StrategyOptions msp;
  msp.sequence_parallel = true;
  out.push_back({"tp", msp});
  if (ranks == 4) {
    StrategyOptions mesh;
    mesh.tp = mesh.sp = 2;
    out.push_back({"tpsp", mesh});
    StrategyOptions dp;
    dp.dp = 2;
    out.push_back({"tsp", dp});
  }
  return out;
}

struct Result {
  double loss = 0;
  std::vector<float> logits;
  std::vector<std::vector<float>> grads;
};

// One forward, backward and logits of `c` under `l`, with every master weight w replaced by nudge(w).
template <class Nudge>
Result run(const ModelConfig& c, const Layout& l, Nudge&& nudge) {
  Communicator world = Communicator::world();
  auto s = make_strategy<float>(l.strategy, world, l.options);
  ModelParams<float> p(c, s->shard_spec(c));
  p.init(21);
  for (int b = 0; b < p.num_blocks(); ++b)
    for (float& w : p.value(b).span()) w = nudge(w);
  Transformer<float> model(p, *s);
  const int64_t batch = 2 * l.options.dp, seq = 24;
  std::mt19937 rng(5);
  std::vector<int32_t> tokens(size_t(batch * seq)), targets(tokens.size());
  for (auto& t : tokens) t = int32_t(rng() % uint32_t(c.vocab_size));
  for (size_t i = 0; i < tokens.size(); ++i) targets[i] = i + 1 < tokens.size() ? tokens[i + 1] : -100;
  Result r;
  p.zero_grads();
  r.loss = model.forward(tokens.data(), targets.data(), batch, seq).loss;
  model.backward();
  for (int b = 0; b < p.num_blocks(); ++b)
    r.grads.emplace_back(p.grad(b).span().begin(), p.grad(b).span().end());
  r.logits = model.logits(tokens.data(), batch, seq);
  return r;
}

TEST(Bf16Policy, EveryWeightIsReadThroughItsBf16Copy) {
  const int ranks = Communicator::world().size();
  for (bool products_bf16 : {true, false}) {
    if (products_bf16 && !kernels::onednn::bf16_supported()) continue;
    kernels::ScopedMatmulPrecision products(products_bf16 ? kernels::MatmulPrecision::bf16
                                                          : kernels::MatmulPrecision::fp32);
    for (const auto& [name, c] : std::vector<std::pair<std::string, ModelConfig>>{
             {"llama_untied", test::tsp_test_config(false, 2)},
             {"qwen2_biases", test::with_model_type(test::arch_base_config(2), "qwen2")},
             {"qwen3_qk_norm_tied", test::with_model_type(test::arch_base_config(2, 2, true), "qwen3")}}) {
      for (const Layout& l : layouts(ranks)) {
        SCOPED_TRACE(name + " " + l.strategy + (l.options.sequence_parallel ? "+sp" : "") +
                     (l.options.dp > 1 ? " dp2" : "") +
                     (products_bf16 ? " bf16 products" : " fp32 products"));
        ScopedPrecisionPolicy policy(bf16_policy());
        // The norm gains are 1 and the biases 0 at init: nudged too, so their reads are tested as well.
        const Result exact = run(c, l, [](float w) { return bf16_to_float(float_to_bf16(w + 0.25f)); });
        const Result nudged = run(c, l, [](float w) {
          const float b = bf16_to_float(float_to_bf16(w + 0.25f));
          const float x = b + std::ldexp(std::abs(b), -11);  // a quarter of a bf16 ulp: rounds back to b
          EXPECT_EQ(float_to_bf16(x), float_to_bf16(b));
          return x;
        });
        EXPECT_EQ(exact.loss, nudged.loss);
        EXPECT_EQ(exact.logits, nudged.logits);
        EXPECT_EQ(exact.grads, nudged.grads);
        // Without the policy the nudge shows: the test would catch a read of the master.
        ScopedPrecisionPolicy off(PrecisionPolicy{});
        const Result master = run(c, l, [](float w) {
          const float b = bf16_to_float(float_to_bf16(w + 0.25f));
          return b + std::ldexp(std::abs(b), -11);
        });
        EXPECT_NE(master.logits, exact.logits);
      }
    }
  }
}

// Serving with --blocked-weights: the generator keeps the matrices of at least 512 x 512 in oneDNN's blocked
// layout for the generation, the products use them, and the logits agree with the plain products' to fp32
// accumulation (relative 1e-5), under the bf16 policy whose weights are bf16 alone.
TEST(Bf16Policy, BlockedWeightsServeTheSameLogits) {
  if (!kernels::onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  Communicator world = Communicator::world();
  if (world.size() != 1) GTEST_SKIP() << "one rank: the matrices of a sharded layout are below 512";
  ScopedPrecisionPolicy policy(bf16_policy());
  kernels::ScopedMatmulPrecision products(kernels::MatmulPrecision::bf16);
  ModelConfig c = test::tsp_test_config(false, 1);
  c.hidden_size = 512;
  c.intermediate_size = 512;
  c.num_attention_heads = c.num_key_value_heads = 8;
  c.head_dim = 64;
  auto s = make_strategy<float>("single", world, StrategyOptions{});
  ModelParams<float> p(c, s->shard_spec(c), /*with_grads=*/false);
  p.init(13);
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {7, 8}};
  GenerateOptions o;
  o.max_new_tokens = 4;
  std::vector<float> logits[2];
  for (int blocked = 0; blocked < 2; ++blocked) {
    Generator<float> gen(p, *s, DecodeOptions{});
    gen.blocked_weights = blocked == 1;
    gen.on_logits = [&](const DecodeBatch& b, const float* l, const VocabShard& shard) {
      logits[blocked].insert(logits[blocked].end(), l, l + b.size() * shard.rows);
    };
    const int64_t before = kernels::onednn::blocked_products();
    gen.generate(prompts, o);
    EXPECT_EQ(gen.stats().blocked_bf16_weights, blocked ? 7 : 0);  // q, k, v, o, gate, up, down
    EXPECT_EQ(kernels::onednn::blocked_products() > before, blocked == 1);
  }
  ASSERT_EQ(logits[0].size(), logits[1].size());
  double d2 = 0, r2 = 0;
  for (size_t i = 0; i < logits[0].size(); ++i) {
    d2 += std::pow(double(logits[1][i]) - logits[0][i], 2);
    r2 += std::pow(double(logits[0][i]), 2);
  }
  EXPECT_LE(std::sqrt(d2 / r2), 1e-5);
}

TEST(Bf16Policy, Bf16SumsRoundEveryPartialSumAndAgreeOnEveryRank) {
  Communicator world = Communicator::world();
  const int P = world.size();
  const int64_t n = 1000;
  std::vector<float> mine(static_cast<size_t>(n));
  std::vector<uint16_t> bits(static_cast<size_t>(n));
  std::mt19937 rng(uint32_t(7 + world.rank()));
  std::normal_distribution<float> dist(0.f, 1.f);
  for (int64_t i = 0; i < n; ++i) {
    bits[size_t(i)] = float_to_bf16(dist(rng));
    mine[size_t(i)] = bf16_to_float(bits[size_t(i)]);
  }
  std::vector<float> exact = mine, abs_sum(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) abs_sum[size_t(i)] = std::abs(mine[size_t(i)]);
  world.all_reduce("test.exact", exact.data(), n);
  world.all_reduce("test.abs", abs_sum.data(), n);
  world.all_reduce("test.bf16", bits.data(), n);
  // Every addition rounds to bf16 (unit roundoff 2^-8): at most P-1 roundings of partial sums bounded by
  // the sum of magnitudes, and the last rounding of the result itself.
  const double u = std::ldexp(1.0, -8);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_LE(std::abs(double(bf16_to_float(bits[size_t(i)])) - double(exact[size_t(i)])),
              (std::max(P - 1, 0) + (P > 1 ? 1 : 0)) * u * double(abs_sum[size_t(i)]) + 1e-30)
        << "element " << i;
  std::vector<uint16_t> all(static_cast<size_t>(n * P));
  world.all_gather("test.gather", bits.data(), all.data(), n);
  for (int r = 1; r < P; ++r)
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(all[size_t(r * n + i)], all[size_t(i)]) << "rank " << r;
  EXPECT_EQ(world.stats().at("forward").at("test.bf16").payload_bytes, n * 2);
}

TEST(Bf16Policy, StashSavesBf16AndTheForwardReadsWhatTheBackwardLoads) {
  const int64_t n = 257;
  std::vector<float> values(static_cast<size_t>(n));
  std::mt19937 rng(3);
  std::normal_distribution<float> dist(0.f, 3.f);
  for (float& v : values) v = dist(rng);
  const MemStats before = mem_stats();
  Stash<float> st;
  st.prepare(3, n, /*bf16=*/true);
  EXPECT_EQ(mem_stats().current[size_t(Mem::activations)] - before.current[size_t(Mem::activations)],
            3 * n * 2);
  EXPECT_EQ(mem_stats().current[size_t(Mem::workspace)] - before.current[size_t(Mem::workspace)], n * 4);
  for (int64_t s = 0; s < 3; ++s) {
    float* w = st.work(s);
    for (int64_t i = 0; i < n; ++i) w[i] = values[size_t(i)] * float(s + 1);
    st.save(s);
    for (int64_t i = 0; i < n; ++i)  // rounded in place: the forward reads the saved value
      ASSERT_EQ(w[i], bf16_to_float(float_to_bf16(values[size_t(i)] * float(s + 1))));
  }
  for (int64_t s = 2; s >= 0; --s) {
    const float* x = st.load(s);
    for (int64_t i = 0; i < n; ++i)
      ASSERT_EQ(x[i], bf16_to_float(float_to_bf16(values[size_t(i)] * float(s + 1))));
  }
  // In T the slots are the activations themselves: nothing rounded, no working buffer.
  Stash<float> exact;
  exact.prepare(2, n, /*bf16=*/false);
  float* w = exact.work(1);
  std::copy(values.begin(), values.end(), w);
  exact.save(1);
  EXPECT_EQ(exact.load(1), w);
  EXPECT_EQ(std::vector<float>(w, w + n), values);
}

}  // namespace
}  // namespace tsp

// mpi-ranks: 1 2 3 4
// Inference with a KV cache under every layout (single, tp, tp --sequence-parallel, sp, every tpsp mesh, tsp
// with both KV layouts) on a batch of prompts of different lengths: the logits of EVERY pick (the prefill's
// and each decode step's) equal the full-recompute logits of the same prefix on the single-device model
// (float64 <= 1e-10, float32 <= 1e-5); greedy tokens equal the single-device decoder's; the cache holds the
// fed positions exactly once across the ranks that split them, evenly; its bytes per rank equal the formula.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "../arch_test_configs.h"
#include "comm/communicator.h"
#include "equivalence_helpers.h"
#include "infer/generator.h"
#include "kernels/frozen_weights.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "mesh_test_model.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/registry.h"
#include "parallel/single/single.h"

namespace tsp {
namespace {

struct ServeCase {
  std::string strategy;
  StrategyOptions layout;
  DecodeOptions decode;
  std::string label;
};

std::vector<ServeCase> serve_cases(int ranks) {
  std::vector<ServeCase> v;
  if (ranks == 1) v.push_back({"single", {}, {}, "single"});
  for (const test::MeshLayoutCase& m : test::mesh_layouts(ranks))
    v.push_back({m.strategy, m.options(), {}, m.label()});
  for (KvLayout k : {KvLayout::heads, KvLayout::sequence}) {
    DecodeOptions d;
    d.kv_layout = k;
    v.push_back({"tsp", {}, d, "tsp " + kv_layout_name(k)});
  }
  return v;
}

struct ModelCase {
  std::string name;
  ModelConfig config;
  bool perturb = false;  // norm weights and biases moved off 1 and 0 (test::perturb_vectors)
};
// Llama MHA and GQA, and the architectures of issue 9 with 1 or 2 KV heads (replicated on the ranks of a
// head split larger than that): Qwen2's biases, Qwen3's q/k norms with yarn RoPE, llama3 RoPE. (Dynamic RoPE
// is left out: its frequencies follow the forward's longest position, so a batched KV-cache decode, like
// HF's, does not equal each prefix recomputed alone.)
const std::vector<ModelCase> kModels = {
    {"mha_untied", test::mesh_test_config(false, 2, 12, 12)},
    {"gqa_tied", test::mesh_test_config(true, 2, 24, 12)},
    {"qwen2_bias_kv1", test::with_model_type(test::arch_base_config(1), "qwen2"), true},
    {"qwen3_qknorm_yarn_kv2",
     test::with_rope(test::with_model_type(test::arch_base_config(2), "qwen3"), RopeType::yarn), true},
    {"llama3_rope_kv1_tied", test::with_rope(test::arch_base_config(1, 2, true), RopeType::llama3), true}};

// Ranks the heads of a serving layout are split over (KV heads must divide it or be a multiple of it).
int heads_split(const ServeCase& sc, int ranks) {
  if (sc.strategy == "tp" || sc.strategy == "tsp") return ranks;
  return sc.strategy == "tpsp" ? sc.layout.tp : 1;
}

std::vector<std::vector<int32_t>> make_prompts(int64_t vocab, const std::vector<int64_t>& lengths) {
  std::mt19937 rng(99);
  std::uniform_int_distribution<int32_t> tok(0, int32_t(vocab - 1));
  std::vector<std::vector<int32_t>> p;
  for (int64_t n : lengths) {
    p.emplace_back(size_t(n));
    for (auto& t : p.back()) t = tok(rng);
  }
  return p;
}

// The whole-vocabulary logits of the rows of a pick, assembled from the ranks' shards (test only).
template <class T>
std::vector<T> full_logits(const T* shard_logits, int64_t n, const VocabShard& shard) {
  std::vector<T> full(size_t(n * shard.vocab), T(0));
  for (int64_t i = 0; i < n; ++i)
    std::copy_n(shard_logits + i * shard.rows, shard.rows, full.begin() + i * shard.vocab + shard.begin);
  if (shard.comm && shard.comm->size() > 1)
    shard.comm->all_reduce("test.logits_allreduce", full.data(), n * shard.vocab);
  return full;
}

template <class T>
void run_case(const ServeCase& sc, const ModelCase& mc) {
  SCOPED_TRACE(sc.label + " " + mc.name + (sizeof(T) == sizeof(double) ? " double" : " float"));
  Communicator world = Communicator::world();
  const ModelConfig& c = mc.config;
  const int split = heads_split(sc, world.size());
  if (c.num_key_value_heads % split && split % c.num_key_value_heads) return;  // e.g. 2 KV heads on 3 ranks
  auto strategy = make_replica_strategy<T>(sc.strategy, world, sc.layout);
  ModelParams<T> params(c, strategy->shard_spec(c), /*with_grads=*/false);
  params.init(1234);
  SingleStrategy<T> single;
  ModelParams<T> ref_params(c, single.shard_spec(c), false);
  ref_params.init(1234);
  if (mc.perturb) {
    test::perturb_vectors(params, 1234);
    test::perturb_vectors(ref_params, 1234);
  }
  Transformer<T> ref(ref_params, single);

  const auto prompts = make_prompts(c.vocab_size, {5, 11, 8});
  GenerateOptions o;
  o.max_new_tokens = 6;
  Generator<T> gen(params, *strategy, sc.decode);
  // Every pick: (sequence, position) -> the layout's logits of that position.
  std::map<std::pair<int64_t, int64_t>, std::vector<T>> seen;
  gen.on_logits = [&](const DecodeBatch& batch, const T* logits, const VocabShard& shard) {
    const std::vector<T> full = full_logits(logits, batch.size(), shard);
    for (int64_t i = 0; i < batch.size(); ++i)
      seen[{batch.seq[size_t(i)], batch.pos[size_t(i)]}] =
          std::vector<T>(full.begin() + i * c.vocab_size, full.begin() + (i + 1) * c.vocab_size);
  };
  const std::vector<GeneratedSequence> out = gen.generate(prompts, o);

  // The single-device decoder's greedy tokens.
  Generator<T> ref_gen(ref_params, single, DecodeOptions{});
  const std::vector<GeneratedSequence> want = ref_gen.generate(prompts, o);
  ASSERT_EQ(out.size(), prompts.size());
  for (size_t b = 0; b < out.size(); ++b) {
    EXPECT_EQ(out[b].tokens, want[b].tokens) << "sequence " << b;
    EXPECT_EQ(out[b].finish_reason, "length");
    ASSERT_EQ(int64_t(out[b].tokens.size()), o.max_new_tokens);
  }
  // Every pick against the full recompute of its prefix.
  EXPECT_EQ(int64_t(seen.size()), int64_t(prompts.size()) * o.max_new_tokens);
  for (const auto& [key, logits] : seen) {
    const auto [b, pos] = key;
    std::vector<int32_t> prefix = prompts[size_t(b)];
    prefix.insert(prefix.end(), out[size_t(b)].tokens.begin(), out[size_t(b)].tokens.end());
    prefix.resize(size_t(pos + 1));
    const std::vector<T> all = ref.logits(prefix.data(), 1, pos + 1);
    const std::vector<T> last(all.end() - c.vocab_size, all.end());
    test::expect_vectors_match(logits, last,
                               "logits of sequence " + std::to_string(b) + " at " + std::to_string(pos));
  }

  // The cache: every fed position is cached exactly once across the ranks splitting positions (on every
  // rank of a head split), and each rank holds layers x batch x context / P x its KV width.
  Decoder<T>& dec = gen.decoder();
  const int P = sc.strategy == "sp"                                                   ? world.size()
                : sc.strategy == "tpsp"                                               ? sc.layout.sp
                : (sc.strategy == "tsp" && sc.decode.kv_layout == KvLayout::sequence) ? world.size()
                                                                                      : 1;
  const int T_heads = sc.strategy == "tp"                                                ? world.size()
                      : sc.strategy == "tpsp"                                            ? sc.layout.tp
                      : (sc.strategy == "tsp" && sc.decode.kv_layout == KvLayout::heads) ? world.size()
                                                                                         : 1;
  const int64_t context = dec.context();
  // A head split holds its KV heads (one replicated KV head when the split exceeds them).
  const int64_t width = T_heads > 1 ? params.spec().kv_heads.size * c.head_dim : c.kv_dim();
  EXPECT_EQ(dec.kv_cache_bytes(),
            2 * c.num_hidden_layers * int64_t(prompts.size()) * (context / P) * width * int64_t(sizeof(T)));
  for (size_t b = 0; b < out.size(); ++b) {
    const int64_t fed = int64_t(prompts[b].size() + out[b].tokens.size()) - 1;
    int64_t total = dec.cached_positions(int64_t(b), fed);
    if (world.size() > 1) world.all_reduce("test.cache_count", &total, 1);
    EXPECT_EQ(total, fed * (world.size() / P)) << "sequence " << b;
  }
}

// Temperature, top-k and top-p sampling: the same seed gives the same tokens on every layout.
TEST(Decode, SamplingGivesTheSameTokensOnEveryLayout) {
  Communicator world = Communicator::world();
  const ModelConfig c = test::mesh_test_config(false, 2, 24, 12);
  const auto prompts = make_prompts(c.vocab_size, {7, 3, 12});
  SingleStrategy<double> single;
  ModelParams<double> ref_params(c, single.shard_spec(c), false);
  ref_params.init(9);
  for (const SamplingParams& sp : {SamplingParams{1.0, 0, 1.0, 3}, SamplingParams{0.8, 8, 1.0, 4},
                                   SamplingParams{1.2, 0, 0.7, 5}, SamplingParams{0.9, 10, 0.9, 6}}) {
    GenerateOptions o;
    o.max_new_tokens = 8;
    o.sampling = sp;
    Generator<double> ref_gen(ref_params, single, DecodeOptions{});
    const auto want = ref_gen.generate(prompts, o);
    for (const ServeCase& sc : serve_cases(world.size())) {
      SCOPED_TRACE(sc.label + " T " + std::to_string(sp.temperature) + " k " + std::to_string(sp.top_k) +
                   " p " + std::to_string(sp.top_p));
      auto strategy = make_replica_strategy<double>(sc.strategy, world, sc.layout);
      ModelParams<double> params(c, strategy->shard_spec(c), false);
      params.init(9);
      Generator<double> gen(params, *strategy, sc.decode);
      const auto out = gen.generate(prompts, o);
      for (size_t b = 0; b < out.size(); ++b) EXPECT_EQ(out[b].tokens, want[b].tokens) << "sequence " << b;
    }
  }
}

// Under bf16 products the generator rounds the weights at rest once (kernels/frozen_weights.h): every layout
// gives the same tokens and the same logits, bit for bit, as rounding them in every product, and the copies
// are used (lookups hit), counted at half the fp32 bytes of this rank's parameters.
TEST(Decode, FrozenBf16WeightsGiveTheBitsOfPerCallRounding) {
  if (!kernels::onednn::bf16_supported()) GTEST_SKIP() << "oneDNN has no bf16 product on this CPU";
  kernels::ScopedMatmulPrecision bf16(kernels::MatmulPrecision::bf16);
  Communicator world = Communicator::world();
  const ModelConfig c = test::mesh_test_config(false, 2, 24, 12);
  const auto prompts = make_prompts(c.vocab_size, {7, 3, 12});
  GenerateOptions o;
  o.max_new_tokens = 6;
  for (const ServeCase& sc : serve_cases(world.size())) {
    SCOPED_TRACE(sc.label);
    auto strategy = make_replica_strategy<float>(sc.strategy, world, sc.layout);
    ModelParams<float> params(c, strategy->shard_spec(c), false);
    params.init(9);
    std::vector<std::vector<float>> logits[2];
    std::vector<GeneratedSequence> out[2];
    for (int frozen = 0; frozen < 2; ++frozen) {
      Generator<float> gen(params, *strategy, sc.decode);
      gen.freeze_bf16_weights = frozen == 1;
      gen.on_logits = [&](const DecodeBatch& batch, const float* l, const VocabShard& shard) {
        logits[frozen].emplace_back(l, l + batch.size() * shard.rows);
      };
      const int64_t hits = kernels::frozen_bf16_hits();
      out[frozen] = gen.generate(prompts, o);
      if (frozen) {
        EXPECT_GT(kernels::frozen_bf16_hits(), hits);
        EXPECT_EQ(gen.stats().frozen_bf16_bytes, params.local_numel() * 2);
      } else {
        EXPECT_EQ(kernels::frozen_bf16_hits(), hits);
        EXPECT_EQ(gen.stats().frozen_bf16_bytes, 0);
      }
    }
    for (size_t b = 0; b < prompts.size(); ++b)
      EXPECT_EQ(out[1][b].tokens, out[0][b].tokens) << "sequence " << b;
    EXPECT_EQ(logits[1], logits[0]);
  }
}

// The positions placement stays balanced as sequences grow: the new positions each rank caches differ by at
// most one round-robin block, for every sequence.
TEST(Decode, PositionsPlacementStaysBalanced) {
  Communicator world = Communicator::world();
  if (world.size() == 1) GTEST_SKIP() << "one rank holds every position";
  const ModelConfig c = test::mesh_test_config(false, 1, 12, 12);
  const auto prompts = make_prompts(c.vocab_size, {8, 8, 5});
  for (const ServeCase& sc : serve_cases(world.size())) {
    if (!(sc.strategy == "sp" || (sc.strategy == "tsp" && sc.decode.kv_layout == KvLayout::sequence)))
      continue;
    SCOPED_TRACE(sc.label);
    auto strategy = make_replica_strategy<float>(sc.strategy, world, sc.layout);
    ModelParams<float> params(c, strategy->shard_spec(c), false);
    params.init(2);
    Generator<float> gen(params, *strategy, sc.decode);
    GenerateOptions o;
    o.max_new_tokens = 90;
    const auto out = gen.generate(prompts, o);
    const int64_t S = (8 + 2 * world.size() - 1) / (2 * world.size()) * (2 * world.size());
    for (size_t b = 0; b < out.size(); ++b) {
      const int64_t fed = int64_t(prompts[b].size() + out[b].tokens.size()) - 1;
      // Positions past the padded prompt cached here, and their spread over the ranks.
      const int64_t mine =
          gen.decoder().cached_positions(int64_t(b), fed) - gen.decoder().cached_positions(int64_t(b), S);
      std::vector<int64_t> all(size_t(world.size()));
      world.all_gather("test.balance", &mine, all.data(), 1);
      const auto [lo, hi] = std::minmax_element(all.begin(), all.end());
      EXPECT_LE(*hi - *lo, kKvBlock) << "sequence " << b;
      EXPECT_EQ(std::accumulate(all.begin(), all.end(), int64_t(0)), fed - S) << "sequence " << b;
    }
  }
}

TEST(Decode, EveryLayoutMatchesFullRecomputeDouble) {
  for (const ServeCase& sc : serve_cases(Communicator::world().size()))
    for (const ModelCase& mc : kModels) run_case<double>(sc, mc);
}

TEST(Decode, EveryLayoutMatchesFullRecomputeFloat) {
  for (const ServeCase& sc : serve_cases(Communicator::world().size()))
    for (const ModelCase& mc : kModels) run_case<float>(sc, mc);
}

}  // namespace
}  // namespace tsp

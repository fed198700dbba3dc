// The single-device model as a whole: finite-difference gradients of the mean loss through every block
// (double), layout-independent initialisation, and checkpoint round trips at the model level.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <random>

#include "core/check.h"
#include "kernel_test_util.h"
#include "kernels/cross_entropy.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/single/single.h"

namespace tsp {
namespace {

ModelConfig micro_config(bool tied) {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 4;
  c.vocab_size = 29;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 10000;
  c.tie_word_embeddings = tied;
  return c;
}

struct Batch2 {
  int64_t B = 2, S = 9;
  std::vector<int32_t> tokens, targets;
};

Batch2 random_batch(int vocab, uint64_t seed) {
  Batch2 b;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < b.B * b.S; ++i) b.tokens.push_back(int32_t(rng() % uint64_t(vocab)));
  for (int64_t i = 0; i < b.B * b.S; ++i)
    b.targets.push_back((i % b.S == b.S - 1 || rng() % 5 == 0) ? kernels::kIgnoreIndex
                                                               : b.tokens[size_t(i + 1)]);
  return b;
}

// The micro model (tied or untied), and the `tiny` preset itself.
enum class GradModel { micro_untied, micro_tied, tiny_preset };

ModelConfig grad_config(GradModel m) {
  if (m == GradModel::tiny_preset) return preset_config("tiny");
  return micro_config(m == GradModel::micro_tied);
}

class ModelGradient : public testing::TestWithParam<GradModel> {};

// Central differences on a sample of entries of every parameter block (every norm weight, and a spread of
// matrix entries) against the hand-written backward. The init scale is raised so that every path carries a
// gradient well above the finite-difference noise.
TEST_P(ModelGradient, MatchesFiniteDifferences) {
  const ModelConfig c = grad_config(GetParam());
  ModelParams<double> p(c, ShardSpec::full(c));
  p.init(7, GetParam() == GradModel::tiny_preset ? 0.1 : 0.3);
  SingleStrategy<double> single;
  Transformer<double> model(p, single);
  Batch2 b = random_batch(int(c.vocab_size), 3);
  p.zero_grads();
  model.forward(b.tokens.data(), b.targets.data(), b.B, b.S);
  model.backward();
  auto loss = [&] { return model.forward(b.tokens.data(), b.targets.data(), b.B, b.S).loss; };
  for (int blk = 0; blk < p.num_blocks(); ++blk) {
    Buffer<double>& w = p.value(blk);
    const int64_t n = w.size();
    const int64_t stride = std::max<int64_t>(1, n / 60);
    std::vector<double> analytic, numeric;
    for (int64_t i = 0; i < n; i += stride) {
      const double saved = w[i], h = 1e-6 * std::max(1.0, std::abs(saved));
      w[i] = saved + h;
      const double up = loss();
      w[i] = saved - h;
      const double down = loss();
      w[i] = saved;
      numeric.push_back((up - down) / (2 * h));
      analytic.push_back(p.grad(blk)[i]);
    }
    EXPECT_LE(test::rel_error(analytic, numeric), 1e-6) << "block " << p.blocks()[size_t(blk)].name;
  }
}

std::string grad_model_name(const testing::TestParamInfo<GradModel>& info) {
  switch (info.param) {
    case GradModel::micro_untied:
      return "micro_untied";
    case GradModel::micro_tied:
      return "micro_tied";
    case GradModel::tiny_preset:
      return "tiny_preset";
  }
  return "?";
}

INSTANTIATE_TEST_SUITE_P(Models, ModelGradient,
                         testing::Values(GradModel::micro_untied, GradModel::micro_tied,
                                         GradModel::tiny_preset),
                         grad_model_name);

TEST(ModelParams, InitialisationDoesNotDependOnSharding) {
  ModelConfig c = micro_config(false);
  c.num_key_value_heads = 4;  // so that 4 shards are possible; vocab 29 pads to 30 and 32
  ModelParams<double> full(c, ShardSpec::full(c));
  full.init(11);
  for (int D : {2, 4}) {
    for (int rank = 0; rank < D; ++rank) {
      ModelParams<double> part(c, ShardSpec::folded(c, D, rank, "tsp"));
      part.init(11);
      for (int b = 0; b < part.num_blocks(); ++b)
        for (size_t vi = 0; vi < part.blocks()[size_t(b)].views.size(); ++vi) {
          const TensorView& v = part.blocks()[size_t(b)].views[vi];
          const TensorView& fv = full.blocks()[size_t(b)].views[vi];
          for (int64_t r = 0; r < v.valid_rows; ++r)
            for (int64_t col = 0; col < v.cols; ++col)
              ASSERT_EQ(part.value(b)[v.offset + r * v.cols + col],
                        full.value(b)[fv.offset + (v.row_begin + r) * fv.cols + v.col_begin + col])
                  << v.name << " D=" << D << " rank=" << rank;
          for (int64_t r = v.valid_rows; r < v.rows; ++r)  // vocabulary padding stays zero
            for (int64_t col = 0; col < v.cols; ++col)
              ASSERT_EQ(part.value(b)[v.offset + r * v.cols + col], 0.0);
        }
    }
  }
}

TEST(ModelParams, ShardingRejectsSizesThatDoNotDivide) {
  ModelConfig c = micro_config(false);                          // 4 heads, 2 kv heads, intermediate 24
  EXPECT_THROW(ShardSpec::folded(c, 4, 0, "tsp"), UsageError);  // kv heads 2 % 4
  c.num_key_value_heads = 4;
  c.intermediate_size = 30;
  try {
    ShardSpec::folded(c, 4, 0, "tsp");
    FAIL() << "intermediate 30 on 4 ranks accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("intermediate_size divisible by 4, but it is 30"), std::string::npos)
        << e.what();
  }
}

TEST(Checkpoint, RoundTripKeepsWeightsOptimizerAndState) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / fmt::format("tsp_model_ckpt_{}", ::getpid());
  fs::remove_all(dir);
  const ModelConfig c = micro_config(false);
  ModelParams<float> p(c, ShardSpec::full(c));
  p.init(5);
  AdamW<float> opt(p, {});
  SingleStrategy<float> single;
  Transformer<float> model(p, single);
  Batch2 b = random_batch(int(c.vocab_size), 9);
  p.zero_grads();
  model.forward(b.tokens.data(), b.targets.data(), b.B, b.S);
  model.backward();
  opt.step(single, 1e-2, 1.0);
  TrainState st;
  st.step = 1;
  st.data_position = 17;
  st.seed = 5;
  save_checkpoint((dir / "ck").string(), p, &opt, &st, nullptr);
  EXPECT_TRUE(fs::exists(dir / "ck" / "config.json"));
  EXPECT_TRUE(fs::exists(dir / "ck" / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir / ".ck.tmp"));

  ModelParams<float> q(c, ShardSpec::full(c));
  AdamW<float> opt2(q, {});
  TrainState st2;
  load_checkpoint((dir / "ck").string(), q, &opt2, &st2);
  EXPECT_EQ(st2.step, 1);
  EXPECT_EQ(st2.data_position, 17);
  EXPECT_EQ(opt2.t(), 1);
  for (int blk = 0; blk < p.num_blocks(); ++blk)
    for (int64_t i = 0; i < p.value(blk).size(); ++i) {
      ASSERT_EQ(p.value(blk)[i], q.value(blk)[i]);
      ASSERT_EQ(opt.m(blk)[i], opt2.m(blk)[i]);
      ASSERT_EQ(opt.v(blk)[i], opt2.v(blk)[i]);
    }
  // A model with another shape is refused, naming both configs.
  ModelConfig other = c;
  other.hidden_size = 32;
  other.head_dim = 8;
  ModelParams<float> r(other, ShardSpec::full(other));
  EXPECT_THROW(load_checkpoint<float>((dir / "ck").string(), r, nullptr, nullptr), UsageError);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tsp

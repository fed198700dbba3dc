// mpi-ranks: 1 2 3 4
// TSP on D ranks computes the same model as the single-device reference: loss, logits (original token order),
// every gradient (each rank's shard against the matching block of the full gradient), and the parameters
// after an AdamW step. Every rank also builds the single-device model, so no communication is needed to
// compare.
#include <gtest/gtest.h>

#include "equivalence_helpers.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/single/single.h"
#include "parallel/tsp/tsp.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

struct Case {
  std::string name;
  int64_t layers, heads, kv_heads, head_dim;
  bool tied;
  bool keep_gathered_kv;
};

// Sizes divide by D = 1..4 (heads, KV heads, intermediate); the vocabulary (61) does not, so the last
// vocabulary shard carries padding rows; S = 24 is a multiple of 2D for D = 1..4.
ModelConfig make_config(const Case& k) {
  ModelConfig c;
  c.hidden_size = 48;
  c.intermediate_size = 96;
  c.num_hidden_layers = k.layers;
  c.num_attention_heads = k.heads;
  c.num_key_value_heads = k.kv_heads;
  c.head_dim = k.head_dim;
  c.vocab_size = 61;
  c.max_position_embeddings = 128;
  c.tie_word_embeddings = k.tied;
  c.validate();
  return c;
}

const std::vector<Case> kCases = {
    {"mha_untied", 2, 12, 12, 4, false, false},
    {"gqa_tied", 3, 24, 12, 4, true, false},
    {"mha_untied_keep_kv", 2, 12, 12, 4, false, true},
};

constexpr int64_t kBatch = 2, kSeq = 24;

using test::expect_blocks_match;
using test::expect_vectors_match;
using test::make_batch;
using test::tolerance;

template <class T>
void run_case(const Case& k) {
  SCOPED_TRACE(k.name + (sizeof(T) == sizeof(double) ? " double" : " float"));
  Communicator comm = Communicator::world();
  const ModelConfig c = make_config(k);
  const uint64_t seed = 1234;

  SingleStrategy<T> single;
  ModelParams<T> ref_params(c, single.shard_spec(c));
  ref_params.init(seed);
  Transformer<T> ref(ref_params, single);

  TspStrategy<T> tsp(comm, TspOptions{k.keep_gathered_kv});
  ModelParams<T> params(c, ShardSpec::folded(c, comm.size(), comm.rank(), "tsp"));
  params.init(seed);
  Transformer<T> model(params, tsp);

  std::vector<int32_t> tokens, targets;
  make_batch(c.vocab_size, kBatch, kSeq, 77, tokens, targets);

  // Forward and backward: loss, accuracy counts and every gradient.
  ref_params.zero_grads();
  params.zero_grads();
  const StepResult want = ref.forward(tokens.data(), targets.data(), kBatch, kSeq, true);
  const StepResult got = model.forward(tokens.data(), targets.data(), kBatch, kSeq, true);
  EXPECT_EQ(got.targets, want.targets);
  EXPECT_EQ(got.correct, want.correct);
  EXPECT_NEAR(got.loss, want.loss, tolerance<T>() * std::abs(want.loss)) << "loss";
  ref.backward();
  model.backward();
  expect_blocks_match(params, ref_params, true, "gradient");

  // Logits in original token order, on every rank.
  expect_vectors_match(model.logits(tokens.data(), kBatch, kSeq), ref.logits(tokens.data(), kBatch, kSeq),
                       "logits");

  // One AdamW step (with clipping, so the global gradient norm over shards matters) keeps them equal.
  AdamW<T> ref_opt(ref_params, kernels::AdamWHyper{});
  AdamW<T> opt(params, kernels::AdamWHyper{});
  const double ref_norm = ref_opt.step(single, 1e-3, 0.5);
  const double norm = opt.step(tsp, 1e-3, 0.5);
  EXPECT_NEAR(norm, ref_norm, tolerance<T>() * ref_norm) << "gradient norm";
  expect_blocks_match(params, ref_params, false, "parameter after AdamW");

  // A second step shape reallocates the strategy's buffers; the models still agree.
  std::vector<int32_t> tokens2, targets2;
  make_batch(c.vocab_size, 1, 2 * kSeq, 78, tokens2, targets2);
  ref_params.zero_grads();
  params.zero_grads();
  const StepResult want2 = ref.forward(tokens2.data(), targets2.data(), 1, 2 * kSeq);
  const StepResult got2 = model.forward(tokens2.data(), targets2.data(), 1, 2 * kSeq);
  EXPECT_NEAR(got2.loss, want2.loss, tolerance<T>() * std::abs(want2.loss)) << "loss, second shape";
  ref.backward();
  model.backward();
  expect_blocks_match(params, ref_params, true, "gradient, second shape");
}

TEST(TspEquivalence, MatchesSingleDeviceDouble) {
  for (const Case& k : kCases) run_case<double>(k);
}

TEST(TspEquivalence, MatchesSingleDeviceFloat) {
  for (const Case& k : kCases) run_case<float>(k);
}

}  // namespace
}  // namespace tsp

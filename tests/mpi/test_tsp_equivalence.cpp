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

template <class T>
void run_case(const Case& k) {
  SCOPED_TRACE(k.name + (sizeof(T) == sizeof(double) ? " double" : " float"));
  Communicator comm = Communicator::world();
  const ModelConfig c = make_config(k);

  TspStrategy<T> tsp(comm, TspOptions{k.keep_gathered_kv});
  test::expect_layout_matches_single<T>(tsp, c, kBatch, kSeq, /*params_after_step=*/true);
}

TEST(TspEquivalence, MatchesSingleDeviceDouble) {
  for (const Case& k : kCases) run_case<double>(k);
}

TEST(TspEquivalence, MatchesSingleDeviceFloat) {
  for (const Case& k : kCases) run_case<float>(k);
}

}  // namespace
}  // namespace tsp

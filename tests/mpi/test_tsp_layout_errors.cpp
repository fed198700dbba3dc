// mpi-ranks: 2 3
// Shapes TSP cannot run are rejected on EVERY rank with a tsp::UsageError before any communication, and the
// message names the value and what is allowed (tsp-spec.md §3-4). After a rejected step the ranks are still
// in step: a valid step on the same communicator runs.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/tsp/tsp.h"

namespace tsp {
namespace {

using ::testing::HasSubstr;

// Divisible by D = 2 and 3 everywhere; each test breaks one size.
ModelConfig valid_config() {
  ModelConfig c;
  c.hidden_size = 24;
  c.intermediate_size = 48;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 6;
  c.num_key_value_heads = 6;
  c.head_dim = 4;
  c.vocab_size = 29;
  c.max_position_embeddings = 256;
  return c;
}

// Runs f, which must throw UsageError; returns its message.
template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no UsageError thrown";
  return "";
}

TEST(TspLayoutErrors, SequenceLengthNotMultipleOf2D) {
  Communicator comm = Communicator::world();
  const int D = comm.size();
  const ModelConfig c = valid_config();
  TspStrategy<double> tsp(comm);
  const int64_t seq = 2 * D * 3 + 2;  // between 6D and 6D + 2D
  const std::string msg = usage_error([&] { tsp.validate(c, 1, seq); });
  EXPECT_THAT(msg, HasSubstr("--seq-len " + std::to_string(seq)));
  EXPECT_THAT(msg, HasSubstr(std::to_string(2 * D) + " equal chunks"));
  EXPECT_THAT(msg,
              HasSubstr("nearest valid lengths: " + std::to_string(6 * D) + " or " + std::to_string(8 * D)));
  const std::string small = usage_error([&] { tsp.validate(c, 1, 1); });
  EXPECT_THAT(small, HasSubstr("smallest valid length is " + std::to_string(2 * D)));

  // Through the model: the step is refused on every rank before any communication ...
  ModelParams<double> params(c, tsp.shard_spec(c));
  params.init(2);
  Transformer<double> model(params, tsp);
  std::vector<int32_t> tokens(size_t(seq), 1), targets(size_t(seq), 2);
  const std::string via_model = usage_error([&] { model.forward(tokens.data(), targets.data(), 1, seq); });
  EXPECT_THAT(via_model, HasSubstr("--seq-len " + std::to_string(seq)));
  // ... so the ranks are still in step and a valid shape runs.
  const int64_t ok = 2 * D * 2;
  tokens.resize(size_t(ok));
  targets.resize(size_t(ok));
  const StepResult r = model.forward(tokens.data(), targets.data(), 1, ok);
  EXPECT_EQ(r.targets, ok);
}

TEST(TspLayoutErrors, AttentionHeadsNotDivisible) {
  Communicator comm = Communicator::world();
  const int D = comm.size();
  ModelConfig c = valid_config();
  c.num_attention_heads = c.num_key_value_heads = 2 * D + 1;
  TspStrategy<double> tsp(comm);
  const std::string msg = usage_error([&] { tsp.validate(c, 1, 4 * D); });
  EXPECT_THAT(msg, HasSubstr("num_attention_heads divisible by " + std::to_string(D) + ", but it is " +
                             std::to_string(2 * D + 1)));
  EXPECT_THAT(usage_error([&] { (void)tsp.shard_spec(c); }), HasSubstr("num_attention_heads"));
}

TEST(TspLayoutErrors, KeyValueHeadsNotDivisible) {
  Communicator comm = Communicator::world();
  const int D = comm.size();
  ModelConfig c = valid_config();
  c.num_key_value_heads = D + 1;  // heads D·(D+1): divisible by D and a multiple of the KV heads
  c.num_attention_heads = D * (D + 1);
  c.validate();
  TspStrategy<double> tsp(comm);
  const std::string msg = usage_error([&] { tsp.validate(c, 1, 4 * D); });
  EXPECT_THAT(msg, HasSubstr("num_key_value_heads divisible by " + std::to_string(D) + ", but it is " +
                             std::to_string(D + 1)));
}

TEST(TspLayoutErrors, IntermediateNotDivisible) {
  Communicator comm = Communicator::world();
  const int D = comm.size();
  ModelConfig c = valid_config();
  c.intermediate_size = 12 * D + 1;
  TspStrategy<double> tsp(comm);
  const std::string msg = usage_error([&] { tsp.validate(c, 1, 4 * D); });
  EXPECT_THAT(msg, HasSubstr("intermediate_size divisible by " + std::to_string(D) + ", but it is " +
                             std::to_string(12 * D + 1)));
  EXPECT_THAT(msg, HasSubstr("--strategy tsp"));
}

}  // namespace
}  // namespace tsp

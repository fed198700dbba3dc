// mpi-ranks: 1 2 3 4
// The mesh engine (tp, tp --sequence-parallel, sp, tpsp with and without Megatron-SP) computes the same model
// as the single-device reference on every rank count: loss, accuracy counts, logits (original token order),
// every gradient (each rank's shard against the matching block of the full gradient), the gradient norm and
// the parameters after an AdamW step, and again after a change of step shape. MHA and GQA, tied and untied.
#include <gtest/gtest.h>

#include "equivalence_helpers.h"

#include "mesh_test_model.h"

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/equivalence.h"
#include "parallel/single/single.h"
#include "train/optimizer.h"

namespace tsp {
namespace {

struct ModelCase {
  std::string name;
  int64_t layers, heads, kv_heads;
  bool tied;
};

const std::vector<ModelCase> kModels = {
    {"mha_untied", 2, 12, 12, false},
    {"gqa_tied", 2, 24, 12, true},
};

constexpr int64_t kBatch = 2, kSeq = 24;

template <class T>
void run_case(const test::MeshLayoutCase& layout, const ModelCase& k) {
  SCOPED_TRACE(layout.label() + " " + k.name + (sizeof(T) == sizeof(double) ? " double" : " float"));
  Communicator comm = Communicator::world();
  const ModelConfig c = test::mesh_test_config(k.tied, k.layers, k.heads, k.kv_heads);
  if (c.num_attention_heads % layout.tp || c.num_key_value_heads % layout.tp) return;

  auto mesh = make_replica_strategy<T>(layout.strategy, comm, layout.options());
  ASSERT_EQ(mesh->name(), layout.strategy);
  // Parameters after the step are compared in float64 only: AdamW's per-element m/(sqrt(v)+eps) turns a
  // float32 round-off difference (1e-7 relative) of a near-zero gradient element into an O(1) difference of
  // its update, which measures AdamW's conditioning rather than the layout.
  test::expect_layout_matches_single<T>(*mesh, c, kBatch, kSeq, sizeof(T) == sizeof(double));
}

TEST(MeshEquivalence, MatchesSingleDeviceDouble) {
  for (const auto& layout : test::mesh_layouts(Communicator::world().size()))
    for (const ModelCase& k : kModels) run_case<double>(layout, k);
}

TEST(MeshEquivalence, MatchesSingleDeviceFloat) {
  for (const auto& layout : test::mesh_layouts(Communicator::world().size()))
    for (const ModelCase& k : kModels) run_case<float>(layout, k);
}

// `tsp check`'s path (run_check) passes for every layout at float64 and float32 round-off.
TEST(MeshEquivalence, CheckPasses) {
  Communicator comm = Communicator::world();
  for (const auto& layout : test::mesh_layouts(comm.size()))
    for (const std::string dtype : {"float64", "float32"}) {
      CheckOptions o;
      o.model = test::mesh_test_config(false, 2);
      o.strategy = layout.strategy;
      o.dtype = dtype;
      o.seq_len = kSeq;
      o.batch = kBatch;
      o.layout = layout.options();
      const nlohmann::json r = run_check(o, comm);
      EXPECT_TRUE(r["pass"].get<bool>()) << layout.label() << " " << dtype << ": " << r["max_rel_err"].dump();
      if (comm.rank() == 0)
        std::printf("[check] %s %s: loss %.3g logits %.3g grads %.3g\n", layout.label().c_str(),
                    dtype.c_str(), r["max_rel_err"]["loss"].get<double>(),
                    r["max_rel_err"]["logits"].get<double>(), r["max_rel_err"]["grads"].get<double>());
    }
}

// A mesh that does not fit the ranks, and the divisibility rules, are usage errors raised before any
// collective (so they are raised identically on every rank).
TEST(MeshEquivalence, RejectsBadShapes) {
  Communicator comm = Communicator::world();
  const int M = comm.size();
  StrategyOptions bad;
  bad.tp = M + 1;
  EXPECT_THROW(make_replica_strategy<double>("tpsp", comm, bad), UsageError);
  EXPECT_THROW(make_replica_strategy<double>("tpsp", comm, StrategyOptions{}), UsageError);
  StrategyOptions msp;
  msp.sequence_parallel = true;
  EXPECT_THROW(make_replica_strategy<double>("sp", comm, msp), UsageError);
  if (M > 1) {
    auto sp = make_replica_strategy<double>("sp", comm, StrategyOptions{});
    EXPECT_THROW(sp->validate(test::mesh_test_config(false, 1), 1, 2 * M + 2), UsageError);
    auto tp = make_replica_strategy<double>("tp", comm, msp);
    EXPECT_THROW(tp->validate(test::mesh_test_config(false, 1), 1, M * 3 + 1), UsageError);
  }
  if (M == 3 || M == 4) {
    // 4 heads do not split into 3 TP shards; 12 do into 4, but 3 KV heads can be neither split 4 ways nor
    // replicated (4 is no multiple of 3).
    auto tp = make_replica_strategy<double>("tp", comm, StrategyOptions{});
    EXPECT_THROW(
        tp->validate(
            M == 3 ? test::mesh_test_config(false, 1, 4, 2) : test::mesh_test_config(false, 1, 12, 3), 1, 24),
        UsageError);
  }
}

}  // namespace
}  // namespace tsp

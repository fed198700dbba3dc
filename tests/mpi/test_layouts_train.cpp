// mpi-ranks: 4
// Every layout trains like the single-device model and writes checkpoints any other layout resumes: on 4
// ranks, each layout (tp, Megatron-SP tp, sp, the 2x2 mesh, and data parallelism around single, tp and tsp,
// with and without ZeRO-1) runs the same float64 schedule as a single-device run on a one-rank communicator,
// step by step; and a run stopped under one layout and resumed under another ends where the uninterrupted
// single-device run ends.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <string>

#include "model/params.h"
#include "parallel/registry.h"
#include "train/optimizer.h"
#include "train/trainer.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

struct Layout {
  std::string label, strategy;
  StrategyOptions opts;
};

void PrintTo(const Layout& l, std::ostream* os) {
  *os << l.label;
}

std::vector<Layout> layouts() {
  auto mk = [](std::string label, std::string strategy, int tp, int sp, bool seqpar, int dp, bool zero1) {
    StrategyOptions o;
    o.tp = tp;
    o.sp = sp;
    o.sequence_parallel = seqpar;
    o.dp = dp;
    o.zero1 = zero1;
    return Layout{std::move(label), std::move(strategy), o};
  };
  return {mk("tp4", "tp", 0, 0, false, 1, false),
          mk("tp4_seqpar", "tp", 0, 0, true, 1, false),
          mk("sp4", "sp", 0, 0, false, 1, false),
          mk("tpsp2x2", "tpsp", 2, 2, false, 1, false),
          mk("tpsp2x2_seqpar", "tpsp", 2, 2, true, 1, false),
          mk("single_dp4", "single", 0, 0, false, 4, false),
          mk("single_dp4_zero1", "single", 0, 0, false, 4, true),
          mk("tp2_dp2", "tp", 0, 0, false, 2, false),
          mk("tsp2_dp2", "tsp", 0, 0, false, 2, false),
          mk("tsp2_dp2_zero1", "tsp", 0, 0, false, 2, true)};
}

TrainOptions base_options() {
  TrainOptions o;
  o.model = preset_config("tiny");
  o.model.num_key_value_heads = 4;  // so that tp can use all 4 ranks (GQA is covered by the check tests)
  o.dtype = "float64";
  o.seq_len = 256;
  o.batch = 4;
  o.steps = 4;
  o.warmup = 2;
  o.seq_len_warmup = 0;
  o.eval_batches = 1;
  o.progress = false;
  o.json = true;
  return o;
}

fs::path scratch_dir(Communicator& world, const std::string& name) {
  int64_t id = int64_t(::getpid());
  world.broadcast("test.dir", &id, 1, 0);
  fs::path d = fs::temp_directory_path() / fmt::format("tsp_layouts_{}_{}", name, id);
  if (world.rank() == 0) fs::create_directories(d);
  world.barrier();
  return d;
}

// The single-device run every layout is compared with, on a one-rank communicator of each rank. It depends
// only on eval_batches, so each rank computes it once per value and the 20 layout tests share it.
const nlohmann::json& single_reference(Communicator& world, int64_t eval_batches) {
  static std::map<int64_t, nlohmann::json> cache;
  auto it = cache.find(eval_batches);
  if (it != cache.end()) return it->second;
  Communicator alone = world.split(world.rank(), 0);
  TrainOptions s = base_options();
  s.strategy = "single";
  s.eval_batches = eval_batches;
  return cache.emplace(eval_batches, run_training(s, alone)).first->second;
}

class LayoutTraining : public ::testing::TestWithParam<Layout> {};

TEST_P(LayoutTraining, LossCurveMatchesSingleDevice) {
  Communicator world = Communicator::world();
  ASSERT_EQ(world.size(), 4);
  const Layout& L = GetParam();
  TrainOptions o = base_options();
  o.strategy = L.strategy;
  o.layout = L.opts;
  nlohmann::json par = run_training(o, world);
  const nlohmann::json& ref = single_reference(world, o.eval_batches);
  ASSERT_EQ(par.at("log").size(), size_t(o.steps));
  ASSERT_EQ(par.at("log").size(), ref.at("log").size());
  for (size_t i = 0; i < ref.at("log").size(); ++i) {
    const double a = par.at("log")[i]["loss"].get<double>(), b = ref.at("log")[i]["loss"].get<double>();
    EXPECT_NEAR(a, b, 1e-10 * std::abs(b)) << L.label << " step " << i + 1;
    const double ga = par.at("log")[i]["grad_norm"].get<double>(),
                 gb = ref.at("log")[i]["grad_norm"].get<double>();
    EXPECT_NEAR(ga, gb, 1e-9 * std::abs(gb)) << L.label << " grad norm at step " << i + 1;
  }
  EXPECT_EQ(par.at("recall_accuracy").get<double>(), ref.at("recall_accuracy").get<double>()) << L.label;
}

// Stops under one layout at step 2 and resumes under the next layout of the list: the run ends where four
// uninterrupted single-device steps end.
TEST_P(LayoutTraining, CheckpointResumesUnderAnotherLayout) {
  Communicator world = Communicator::world();
  const std::vector<Layout> all = layouts();
  const Layout& first = GetParam();
  size_t k = 0;
  while (all[k].label != first.label) ++k;
  const Layout& second = all[(k + 1) % all.size()];
  fs::path dir = scratch_dir(world, first.label);

  TrainOptions a = base_options();
  a.strategy = first.strategy;
  a.layout = first.opts;
  a.checkpoint_dir = (dir / "a").string();
  a.save_every = 2;
  a.eval_batches = 0;
  run_training(a, world);  // 4 steps, checkpoint at 2 (and 4)
  TrainOptions b = base_options();
  b.strategy = second.strategy;
  b.layout = second.opts;
  b.resume = (dir / "a" / "step-000002").string();
  b.eval_batches = 0;
  nlohmann::json resumed = run_training(b, world);

  const nlohmann::json& ref = single_reference(world, 0);
  const double want = ref.at("final_loss").get<double>();
  EXPECT_NEAR(resumed["final_loss"].get<double>(), want, 1e-10 * std::abs(want))
      << first.label << " -> " << second.label;
  world.barrier();
  if (world.rank() == 0) fs::remove_all(dir);
  world.barrier();
}

// ZeRO-1: each replica keeps AdamW moments for 1/N of every block (chunks of ceil(n/N)), and the chunks
// tile the block exactly.
TEST(ZeroOne, OptimizerStateIsPartitionedAcrossReplicas) {
  Communicator world = Communicator::world();
  const ModelConfig c = preset_config("tiny");
  for (int dp : {2, 4}) {
    StrategyOptions o;
    o.dp = dp;
    o.zero1 = true;
    auto s = make_strategy<double>(dp == 4 ? "single" : "tsp", world, o);
    ModelParams<double> p(c, s->shard_spec(c));
    AdamW<double> opt(p, kernels::AdamWHyper{}, s.get());
    for (int b = 0; b < p.num_blocks(); ++b) {
      const int64_t n = p.value(b).size(), chunk = (n + dp - 1) / dp;
      const Range r = opt.partition(b);
      EXPECT_EQ(r.begin, std::min(n, s->replica() * chunk));
      EXPECT_EQ(opt.m(b).size(), r.size);
      EXPECT_EQ(opt.v(b).size(), r.size);
      EXPECT_LE(r.size, chunk);
      // The partitions of the DP group tile [0, n).
      int64_t total = r.size;
      world.all_reduce("test.partition_sizes", &total, 1);
      EXPECT_EQ(total, n * (4 / dp)) << "block " << b;  // every DP group covers the block once
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, LayoutTraining, ::testing::ValuesIn(layouts()),
                         [](const auto& info) { return info.param.label; });

}  // namespace
}  // namespace tsp

// mpi-ranks: 1 2 3 4
// Checkpoints of sharded-in-memory models at D = 1-4: a collective save from D shards writes exactly the
// tensors a single-device save writes (also as HF shards with an index, also when blocks are held by several
// ranks), rank 0 never holds more than its receive buffers while saving, and loading a sharded or an
// unsharded checkpoint into D shards gives identical parameters while each rank copies about 1/D of the file.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "core/memory.h"
#include "model/checkpoint.h"
#include "model/checkpoint_io.h"
#include "model/safetensors_index.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

// Heads, KV heads and the intermediate size divide by 1, 2, 3 and 4; the vocabulary does not (padding rows
// at D = 3 and 4).
ModelConfig shard_config(bool tied) {
  ModelConfig c;
  c.hidden_size = 96;
  c.intermediate_size = 120;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 12;
  c.num_key_value_heads = 12;
  c.head_dim = 8;
  c.vocab_size = 250;
  c.max_position_embeddings = 256;
  c.tie_word_embeddings = tied;
  c.validate();
  return c;
}

fs::path scratch_dir(Communicator& world, const std::string& name) {
  int64_t id = int64_t(::getpid());
  world.broadcast("test.dir", &id, 1, 0);
  fs::path d = fs::temp_directory_path() / fmt::format("tsp_ckpt_shards_{}_{}_{}", name, world.size(), id);
  if (world.rank() == 0) {
    fs::remove_all(d);
    fs::create_directories(d);
  }
  world.barrier();
  return d;
}

void remove_scratch(Communicator& world, const fs::path& d) {
  world.barrier();
  if (world.rank() == 0) fs::remove_all(d);
  world.barrier();
}

// Element (row, col) of HF tensor `name` in a full (unsharded) model.
template <class T>
T full_element(ModelParams<T>& full, const std::string& name, int64_t row, int64_t col) {
  for (int b = 0; b < full.num_blocks(); ++b)
    for (const TensorView& v : full.blocks()[size_t(b)].views)
      if (v.name == name) return full.value(b)[v.offset + row * v.cols + col];
  ADD_FAILURE() << "no tensor " << name;
  return T(0);
}

// Every element a shard holds equals the full model's element at its place; padding rows are zero.
template <class T>
void expect_shard_of(ModelParams<T>& shard, ModelParams<T>& full, const std::string& what) {
  for (int b = 0; b < shard.num_blocks(); ++b)
    for (const TensorView& v : shard.blocks()[size_t(b)].views)
      for (int64_t r = 0; r < v.rows; ++r)
        for (int64_t c = 0; c < v.cols; ++c) {
          const T got = shard.value(b)[v.offset + r * v.cols + c];
          const T want =
              r < v.valid_rows ? full_element(full, v.name, v.row_begin + r, v.col_begin + c) : T(0);
          ASSERT_EQ(std::memcmp(&got, &want, sizeof(T)), 0)
              << what << ": " << v.name << " local (" << r << ", " << c << "): " << got << " vs " << want;
        }
}

template <class T>
void expect_same_values(ModelParams<T>& a, ModelParams<T>& b, const std::string& what) {
  for (int blk = 0; blk < a.num_blocks(); ++blk) {
    ASSERT_EQ(a.value(blk).size(), b.value(blk).size());
    ASSERT_EQ(std::memcmp(a.value(blk).data(), b.value(blk).data(), sizeof(T) * size_t(a.value(blk).size())),
              0)
        << what << ": block " << a.blocks()[size_t(blk)].name;
  }
}

// Every tensor of two sets holds the same values (read whole, in double).
void expect_same_sets(const std::string& dir_a, const std::string& dir_b, const std::string& stem) {
  SafetensorsSetReader a(dir_a, stem), b(dir_b, stem);
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& n : a.names()) {
    const TensorInfo& ia = a.info(n);
    ASSERT_EQ(ia.shape, b.info(n).shape) << n;
    ASSERT_EQ(ia.dtype, b.info(n).dtype) << n;
    std::vector<double> va(size_t(ia.numel())), vb(va.size());
    a.file_of(n).read(n, ia.shape, va.data());
    b.file_of(n).read(n, ia.shape, vb.data());
    ASSERT_EQ(va, vb) << n;
  }
}

// Bytes of the tensors every rank holds whole (norm weights), and of everything else.
template <class T>
std::pair<int64_t, int64_t> replicated_and_sharded_bytes(ModelParams<T>& full, int64_t esize) {
  int64_t rep = 0, all = 0;
  for (const auto& b : full.blocks())
    for (const TensorView& v : b.views) {
      all += v.valid_rows * v.cols * esize;
      if (b.placement == Placement::replicated) rep += v.valid_rows * v.cols * esize;
    }
  return {rep, all - rep};
}

// Fills the moments with values that differ per tensor element (and from the weights).
template <class T>
void fill_moments(ModelParams<T>& p, AdamW<T>& opt) {
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i) {
      opt.m(b)[i] = p.value(b)[i] * T(3);
      opt.v(b)[i] = p.value(b)[i] * p.value(b)[i];
    }
}

class CheckpointShards : public ::testing::TestWithParam<bool> {};

// The heart of the test: D shards save, load back (sharded and unsharded checkpoint), byte bound.
TEST_P(CheckpointShards, SaveAndLoadAtAnyRankCount) {
  Communicator world = Communicator::world();
  const int D = world.size(), p = world.rank();
  const ModelConfig c = shard_config(GetParam());
  const fs::path dir = scratch_dir(world, GetParam() ? "tied" : "untied");

  ModelParams<float> full(c, ShardSpec::full(c), false);
  full.init(11);
  ModelParams<float> shard(c, ShardSpec::folded(c, D, p, "tsp"), false);
  shard.init(11);
  AdamW<float> full_opt(full, {}), shard_opt(shard, {});
  fill_moments(full, full_opt);
  fill_moments(shard, shard_opt);
  const TrainState st{7, 70, 11};

  // The reference: one device, one file per set.
  if (p == 0) save_checkpoint<float>((dir / "single").string(), full, &full_opt, &st, nullptr);
  world.barrier();
  ASSERT_TRUE(fs::exists(dir / "single" / "model.safetensors"));

  // D shards save collectively, with shards of at most 64 kB (several files) and 4 kB receive buffers.
  CheckpointWriteOptions small;
  small.max_shard_bytes = 64 << 10;
  small.chunk_bytes = 4 << 10;
  mem_reset_peaks();
  const int64_t before = mem_stats().current_total;
  save_checkpoint<float>((dir / "sharded").string(), shard, &shard_opt, &st, &world, small);
  const int64_t save_peak = mem_stats().peak_total - before;
  // Rank 0 held two receive buffers at most, never a whole tensor (the embedding is 96 kB).
  EXPECT_LE(save_peak, 2 * small.chunk_bytes);
  EXPECT_LT(save_peak, c.vocab_size * c.hidden_size * int64_t(sizeof(float)));

  const fs::path sharded = dir / "sharded";
  ASSERT_TRUE(fs::exists(sharded / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(sharded / "model.safetensors"));
  ASSERT_TRUE(fs::exists(sharded / "optimizer.safetensors.index.json"));
  {
    std::ifstream f(sharded / "model.safetensors.index.json");
    const nlohmann::json index = nlohmann::json::parse(f);
    const SafetensorsSetReader set(sharded.string(), "model");
    int64_t total = 0;
    for (const std::string& n : set.names()) total += int64_t(set.info(n).end - set.info(n).begin);
    EXPECT_EQ(index.at("metadata").at("total_size").get<int64_t>(), total);
    EXPECT_EQ(index.at("weight_map").size(), set.names().size());
    EXPECT_GE(set.files().size(), 3u);
    for (const auto& f2 : set.files()) {
      // No shard exceeds the maximum unless it holds one tensor larger than it.
      const std::string name = fs::path(f2->path()).filename().string();
      EXPECT_TRUE(is_shard_file_name("model", name)) << name;
      if (f2->names().size() > 1) {
        EXPECT_LE(f2->file_size() - 8, uint64_t(small.max_shard_bytes) + 4096) << name;
      }
    }
  }
  // Same tensors as the single-device save, bit for bit.
  if (p == 0) {
    expect_same_sets((dir / "single").string(), sharded.string(), "model");
    expect_same_sets((dir / "single").string(), sharded.string(), "optimizer");
  }

  // Loading the sharded checkpoint and the unsharded one into D shards gives identical parameters, equal to
  // the model that was saved; moments and state come back too.
  ModelParams<float> from_sharded(c, ShardSpec::folded(c, D, p, "tsp"), false);
  ModelParams<float> from_single(c, ShardSpec::folded(c, D, p, "tsp"), false);
  AdamW<float> opt_sharded(from_sharded, {}), opt_single(from_single, {});
  TrainState st_sharded, st_single;
  mem_reset_peaks();
  const int64_t before_load = mem_stats().current_total;
  const CheckpointReadStats rs =
      load_checkpoint<float>(sharded.string(), from_sharded, &opt_sharded, &st_sharded);
  EXPECT_EQ(mem_stats().peak_total, before_load) << "loading allocated tracked memory";
  const CheckpointReadStats ru =
      load_checkpoint<float>((dir / "single").string(), from_single, &opt_single, &st_single);
  expect_same_values(from_sharded, from_single, "sharded vs unsharded checkpoint");
  expect_same_values(from_sharded, shard, "loaded vs saved");
  expect_shard_of(from_sharded, full, "loaded shard vs full model");
  for (int b = 0; b < shard.num_blocks(); ++b)
    for (int64_t i = 0; i < shard.value(b).size(); ++i) {
      ASSERT_EQ(opt_sharded.m(b)[i], shard_opt.m(b)[i]);
      ASSERT_EQ(opt_sharded.v(b)[i], shard_opt.v(b)[i]);
      ASSERT_EQ(opt_single.m(b)[i], shard_opt.m(b)[i]);
    }
  EXPECT_EQ(st_sharded.step, 7);
  EXPECT_EQ(st_sharded.data_position, 70);
  EXPECT_EQ(st_single.seed, 11u);

  // Bytes copied per rank: its 1/D of the sharded tensors plus the replicated norms, whichever form the
  // checkpoint has; summed over ranks, every sharded byte exactly once.
  const auto [rep, sharded_bytes] = replicated_and_sharded_bytes(full, 4);
  for (const auto& [stats, what] : {std::pair{rs, "sharded"}, std::pair{ru, "unsharded"}}) {
    SCOPED_TRACE(what);
    const double file = double(stats.model_file_bytes);
    EXPECT_EQ(stats.model.bytes, ru.model.bytes);
    EXPECT_LE(double(stats.model.bytes), 1.05 * file / D + double(rep));
    EXPECT_GE(double(stats.model.bytes), 0.95 * double(sharded_bytes) / D + double(rep));
    int64_t sum = stats.model.bytes;
    world.all_reduce("test.bytes", &sum, 1);
    EXPECT_EQ(sum, sharded_bytes + D * rep);
    EXPECT_LE(double(stats.optimizer.bytes),
              1.05 * double(stats.optimizer_file_bytes) / D + 2.0 * double(rep));
  }
  if (p == 0)
    std::printf("D=%d: rank 0 copied %lld of %lld model bytes (%.3f of the file, 1/D = %.3f), %lld pages\n",
                D, (long long)rs.model.bytes, (long long)rs.model_file_bytes,
                double(rs.model.bytes) / double(rs.model_file_bytes), 1.0 / D, (long long)rs.model.pages);
  remove_scratch(world, dir);
}

INSTANTIATE_TEST_SUITE_P(Embeddings, CheckpointShards, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Tied" : "Untied"; });

// An HF-style BF16 checkpoint (config torch_dtype bfloat16, shards with an index) loads into D float shards,
// converted on the fly: every shard equals the same checkpoint loaded whole.
TEST(CheckpointShardsBF16, ConvertsWhileCopyingTheShard) {
  Communicator world = Communicator::world();
  const int D = world.size(), p = world.rank();
  const ModelConfig c = shard_config(false);
  const fs::path dir = scratch_dir(world, "bf16");
  ModelParams<float> full(c, ShardSpec::full(c), false);
  full.init(3);
  if (p == 0) {
    nlohmann::json cfg = c.to_json();
    cfg["torch_dtype"] = "bfloat16";
    std::ofstream(dir / "config.json") << cfg.dump(2);
    std::vector<HeldTensor<const float>> held;
    for (int b = 0; b < full.num_blocks(); ++b)
      for (const TensorView& v : full.blocks()[size_t(b)].views)
        held.push_back({v, full.value(b).data() + v.offset});
    TensorSetWriteOptions o;
    o.dtype = DType::BF16;
    o.max_shard_bytes = 40000;
    write_tensor_set<float>(dir.string(), "model", held, o, nullptr);
  }
  world.barrier();
  ASSERT_TRUE(fs::exists(dir / "model.safetensors.index.json"));
  ModelParams<float> whole(c, ShardSpec::full(c), false), part(c, ShardSpec::folded(c, D, p, "tsp"), false);
  load_checkpoint<float>(dir.string(), whole, nullptr, nullptr);
  const CheckpointReadStats rs = load_checkpoint<float>(dir.string(), part, nullptr, nullptr);
  expect_shard_of(part, whole, "bf16 shard vs bf16 whole");
  // BF16 keeps 8 significant bits: the loaded values are the saved ones rounded.
  for (int b = 0; b < full.num_blocks(); ++b)
    for (int64_t i = 0; i < full.value(b).size(); ++i)
      ASSERT_NEAR(whole.value(b)[i], full.value(b)[i], std::abs(full.value(b)[i]) / 256 + 1e-30);
  const auto [rep, sharded_bytes] = replicated_and_sharded_bytes(full, 2);
  EXPECT_LE(double(rs.model.bytes), 1.05 * double(rs.model_file_bytes) / D + double(rep));
  EXPECT_GE(double(rs.model.bytes), 0.95 * double(sharded_bytes) / D + double(rep));
  remove_scratch(world, dir);
}

// Blocks held by several ranks (a 2-way tensor-parallel model on 4 ranks, as the sequence-parallel copies of
// a mesh or replicated KV heads) are written once; blocks that leave part of a tensor uncovered are refused
// on every rank before anything is written.
TEST(CheckpointShardsReplicated, DuplicatesWrittenOnceGapsRefused) {
  Communicator world = Communicator::world();
  const int W = world.size(), p = world.rank();
  const ModelConfig c = shard_config(false);
  const fs::path dir = scratch_dir(world, "replicated");
  ModelParams<float> full(c, ShardSpec::full(c), false);
  full.init(5);
  if (p == 0) save_checkpoint<float>((dir / "single").string(), full, nullptr, nullptr, nullptr);
  if (W % 2 == 0) {
    const int T = W / 2;  // every block on two ranks
    ModelParams<float> shard(c, ShardSpec::folded(c, T, p % T, "tp"), false);
    shard.init(5);
    save_checkpoint<float>((dir / "dup").string(), shard, nullptr, nullptr, &world);
    if (p == 0) expect_same_sets((dir / "single").string(), (dir / "dup").string(), "model");
  }
  {
    // Every rank holds the first of W parts (of 2 alone): the other parts of every sharded tensor are
    // missing.
    ModelParams<float> half(c, ShardSpec::folded(c, W == 1 ? 2 : W, 0, "tsp"), false);
    half.init(5);
    std::string msg;
    try {
      save_checkpoint<float>((dir / "gaps").string(), half, nullptr, nullptr, &world);
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("do not tile"), std::string::npos) << msg;
    EXPECT_NE(msg.find("model.embed_tokens.weight"), std::string::npos) << msg;
    world.barrier();
    EXPECT_FALSE(fs::exists(dir / "gaps"));
    EXPECT_FALSE(fs::exists(dir / ".gaps.tmp"));
  }
  remove_scratch(world, dir);
}

// A double run stores F64 and says so in config.json; it loads back exactly at any D.
TEST(CheckpointShardsF64, DoubleRunsRoundTripExactly) {
  Communicator world = Communicator::world();
  const int D = world.size(), p = world.rank();
  const ModelConfig c = shard_config(true);
  const fs::path dir = scratch_dir(world, "f64");
  ModelParams<double> shard(c, ShardSpec::folded(c, D, p, "tsp"), false);
  shard.init(9);
  CheckpointWriteOptions o;
  o.max_shard_bytes = 100000;
  save_checkpoint<double>((dir / "ck").string(), shard, nullptr, nullptr, &world, o);
  {
    std::ifstream f(dir / "ck" / "config.json");
    EXPECT_EQ(nlohmann::json::parse(f).at("torch_dtype"), "float64");
  }
  ModelParams<double> back(c, ShardSpec::folded(c, D, p, "tsp"), false);
  load_checkpoint<double>((dir / "ck").string(), back, nullptr, nullptr);
  expect_same_values(back, shard, "f64");
  remove_scratch(world, dir);
}

}  // namespace
}  // namespace tsp

// The files of a checkpoint: HF's shard sizes and index, reading in place (only the pages of the block asked
// for, checked against the page cache), and hostile files -- real checkpoints truncated, with overlapping
// tensors, with a dtype that does not match config.json, with a header above 100 MB -- refused with a message
// naming the file, before anything is read into the model and without a large allocation.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/check.h"
#include "core/memory.h"
#include "kernels/bf16.h"
#include "model/checkpoint.h"
#include "model/safetensors_index.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class CheckpointFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("tsp_test_ckfiles_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

ModelConfig small_config() {
  ModelConfig c;
  c.hidden_size = 32;
  c.intermediate_size = 48;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.vocab_size = 61;
  c.max_position_embeddings = 64;
  c.validate();
  return c;
}

std::string read_all(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

// A safetensors file's header (parsed) and its data section.
std::pair<nlohmann::json, std::string> split_file(const fs::path& p) {
  const std::string all = read_all(p);
  uint64_t n = 0;
  std::memcpy(&n, all.data(), 8);
  return {nlohmann::json::parse(all.substr(8, n)), all.substr(8 + n)};
}

void join_file(const fs::path& p, const nlohmann::json& header, const std::string& data) {
  const std::string h = header.dump();
  const uint64_t n = h.size();
  write_all(p, std::string(reinterpret_cast<const char*>(&n), 8) + h + data);
}

// Every parameter set to a value no checkpoint holds, to show that a refused load read nothing.
void fill_sentinel(ModelParams<float>& p) {
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i) p.value(b)[i] = 12345.0f;
}

bool all_sentinel(ModelParams<float>& p) {
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i)
      if (p.value(b)[i] != 12345.0f) return false;
  return true;
}

TEST(ShardSizes, ParseLikeTransformers) {
  EXPECT_EQ(parse_shard_size("5GB"), 5'000'000'000);
  EXPECT_EQ(parse_shard_size("500MB"), 500'000'000);
  EXPECT_EQ(parse_shard_size("10KB"), 10'000);
  EXPECT_EQ(parse_shard_size("2GiB"), int64_t(2) << 30);
  EXPECT_EQ(parse_shard_size("512mib"), int64_t(512) << 20);
  EXPECT_EQ(parse_shard_size("1.5GB"), 1'500'000'000);
  EXPECT_EQ(parse_shard_size("1TB"), 1'000'000'000'000);
  EXPECT_EQ(parse_shard_size("4096"), 4096);
  EXPECT_EQ(parse_shard_size(" 64 KB "), 64'000);
  EXPECT_EQ(parse_shard_size("8Gb"), 1'000'000'000);  // lower-case b: bits, as transformers reads it
  for (const char* bad : {"", "GB", "5XB", "-5GB", "0", "1.2.3MB", "five", "0.1B"}) {
    const std::string msg = error_of([&] { parse_shard_size(bad); });
    EXPECT_CONTAINS(msg, "--max-shard-size");
    EXPECT_CONTAINS(msg, std::string("\"") + bad + "\"");
  }
}

TEST(ShardSizes, PlanLikeHuggingFaceHub) {
  // huggingface_hub's own example: limit 10, sizes [6, 6, 2, 6, 2, 2] -> [6], [6 + 2], [6 + 2 + 2].
  EXPECT_EQ(plan_shards({6, 6, 2, 6, 2, 2}, 10), (std::vector<int>{0, 1, 1, 2, 2, 2}));
  // A tensor above the limit gets its own shard, numbered before the shard still being filled.
  EXPECT_EQ(plan_shards({3, 12, 3, 3, 5}, 10), (std::vector<int>{1, 0, 1, 1, 2}));
  EXPECT_EQ(plan_shards({4, 4}, 100), (std::vector<int>{0, 0}));
  EXPECT_EQ(plan_shards({}, 100), (std::vector<int>{}));
  EXPECT_EQ(shard_file_name("model", 0, 3), "model-00001-of-00003.safetensors");
  EXPECT_TRUE(is_shard_file_name("model", "model-00002-of-00003.safetensors"));
  EXPECT_FALSE(is_shard_file_name("model", "model-0002-of-00003.safetensors"));
  EXPECT_FALSE(is_shard_file_name("model", "optimizer-00002-of-00003.safetensors"));
  EXPECT_FALSE(is_shard_file_name("model", "model.safetensors"));
}

TEST_F(CheckpointFiles, ShardedSetRoundTripWithHfIndex) {
  // Four 8x16 F32 tensors (512 bytes each) and a vector, at most 1100 bytes per shard.
  std::vector<float> m(8 * 16), v(16);
  for (size_t i = 0; i < m.size(); ++i) m[i] = float(i) * 0.25f;
  for (size_t i = 0; i < v.size(); ++i) v[i] = -float(i);
  const std::vector<std::string> names = {"a", "b", "c", "d"};
  {
    SafetensorsSetWriter w(dir_.string(), "model", 1100);
    w.set_metadata("format", "pt");
    for (const auto& n : names) w.declare(n, DType::F32, {8, 16});
    w.declare("norm", DType::BF16, {16});
    // Blocks in any order: the bottom half of "c", its top-right quarter, its top-left quarter.
    w.write_block("c", 4, 4, 0, 16, m.data() + 4 * 16);
    std::vector<float> tr(4 * 8), tl(4 * 8);
    for (int r = 0; r < 4; ++r)
      for (int k = 0; k < 8; ++k) {
        tl[size_t(r * 8 + k)] = m[size_t(r * 16 + k)];
        tr[size_t(r * 8 + k)] = m[size_t(r * 16 + 8 + k)];
      }
    w.write_block("c", 0, 4, 8, 8, tr.data());
    w.write_block("c", 0, 4, 0, 8, tl.data());
    w.write("a", m.data(), int64_t(m.size()));
    w.write("b", m.data(), int64_t(m.size()));
    // The first shard is complete: it is already in place under its final name.
    EXPECT_TRUE(fs::exists(dir_ / "model-00001-of-00002.safetensors"));
    EXPECT_FALSE(fs::exists(dir_ / "model-00002-of-00002.safetensors"));
    w.write("d", m.data(), int64_t(m.size()));
    w.write("norm", v.data(), 16);
    // a + b fit in 1100 bytes, c would not: c, d and the vector form the second shard.
    EXPECT_EQ(w.file_names(), (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                                        "model-00002-of-00002.safetensors"}));
    w.finish();
  }
  std::ifstream f(dir_ / "model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(f);
  EXPECT_EQ(index.at("metadata").at("total_size"), 4 * 512 + 32);
  EXPECT_EQ(index.at("weight_map").at("a"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(index.at("weight_map").at("b"), "model-00001-of-00002.safetensors");
  EXPECT_EQ(index.at("weight_map").at("c"), "model-00002-of-00002.safetensors");
  EXPECT_EQ(index.at("weight_map").at("norm"), "model-00002-of-00002.safetensors");
  for (const auto& e : fs::directory_iterator(dir_)) EXPECT_EQ(e.path().extension() == ".tmp", false);

  const SafetensorsSetReader r(dir_.string(), "model");
  EXPECT_TRUE(r.sharded());
  EXPECT_EQ(r.files().size(), 2u);
  EXPECT_EQ(r.file_of("norm").metadata().at("format"), "pt");
  for (const auto& n : names) {
    std::vector<float> got(m.size());
    r.file_of(n).read(n, {8, 16}, got.data());
    EXPECT_EQ(got, m) << n;
  }
  std::vector<double> got_v(16);
  r.file_of("norm").read("norm", {16}, got_v.data());
  for (int i = 0; i < 16; ++i) EXPECT_EQ(got_v[size_t(i)], -double(i));  // small integers are exact in BF16

  // Saving the same stem again as one file removes the shards and the index of the earlier save.
  {
    SafetensorsSetWriter w(dir_.string(), "model");
    w.declare("a", DType::F32, {8, 16});
    w.write("a", m.data(), int64_t(m.size()));
    w.finish();
  }
  EXPECT_TRUE(fs::exists(dir_ / "model.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir_ / "model-00001-of-00002.safetensors"));
  EXPECT_FALSE(fs::exists(dir_ / "model-00002-of-00002.safetensors"));
  EXPECT_FALSE(SafetensorsSetReader(dir_.string(), "model").sharded());
}

// A set of many shards neither writes nor reads with many files open: 120 shards under a limit of 32
// descriptors.
TEST_F(CheckpointFiles, ManyShardsFewDescriptors) {
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  struct rlimit low = old;
  low.rlim_cur = 32;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  const int n = 120;
  std::vector<float> x(8);
  {
    SafetensorsSetWriter w(dir_.string(), "model", 32);
    for (int i = 0; i < n; ++i) w.declare(fmt::format("t{}", i), DType::F32, {8});
    for (int i = 0; i < n; ++i) {
      std::fill(x.begin(), x.end(), float(i));
      w.write(fmt::format("t{}", i), x.data(), 8);
    }
    w.finish();
  }
  const SafetensorsSetReader r(dir_.string(), "model");
  EXPECT_EQ(r.files().size(), size_t(n));
  for (int i = 0; i < n; ++i) {
    r.read_block(fmt::format("t{}", i), {8}, 0, 1, 0, 8, x.data());
    ASSERT_EQ(x[7], float(i));
  }
  ::setrlimit(RLIMIT_NOFILE, &old);
}

TEST_F(CheckpointFiles, BadIndexesAreRefused) {
  std::vector<float> x(4, 1.0f);
  {
    SafetensorsSetWriter w(dir_.string(), "model", 16);
    w.declare("a", DType::F32, {4});
    w.declare("b", DType::F32, {4});
    w.write("a", x.data(), 4);
    w.write("b", x.data(), 4);
    w.finish();
  }
  const fs::path index = dir_ / "model.safetensors.index.json";
  const std::string good = read_all(index);
  EXPECT_NO_THROW(SafetensorsSetReader(dir_.string(), "model"));
  auto with_map = [&](const nlohmann::json& wm) {
    nlohmann::json j = nlohmann::json::parse(good);
    j["weight_map"] = wm;
    write_all(index, j.dump());
    return error_of([&] { SafetensorsSetReader(dir_.string(), "model"); });
  };
  std::string msg =
      with_map({{"a", "model-00001-of-00002.safetensors"}, {"b", "model-00009-of-00009.safetensors"}});
  EXPECT_CONTAINS(msg, "model-00009-of-00009.safetensors");
  EXPECT_CONTAINS(msg, "does not exist");
  msg = with_map({{"a", "../model-00001-of-00002.safetensors"}});
  EXPECT_CONTAINS(msg, "not a file name in the same directory");
  msg = with_map({{"a", "model-00002-of-00002.safetensors"}});
  EXPECT_CONTAINS(msg, "does not hold it");
  msg = with_map({{"a", 3}});
  EXPECT_CONTAINS(msg, "must be a file name");
  msg = with_map(nlohmann::json::object());
  EXPECT_CONTAINS(msg, "empty");
  write_all(index, "{\"weight_map\": ");
  EXPECT_CONTAINS(error_of([&] { SafetensorsSetReader(dir_.string(), "model"); }), "not valid JSON");
  write_all(index, good);
  // A tensor the model needs but the set does not have is named with the index.
  SafetensorsSetReader r(dir_.string(), "model");
  msg = error_of([&] { r.info("c"); });
  EXPECT_CONTAINS(msg, "'c'");
  EXPECT_CONTAINS(msg, index.string());
  fs::remove(index);
  msg = error_of([&] { SafetensorsSetReader(dir_.string(), "model"); });
  EXPECT_CONTAINS(msg, "neither model.safetensors nor model.safetensors.index.json");
}

// Reading a block copies only its bytes; the pages the reader counts are the pages the kernel brought into
// the page cache (measured with mincore after evicting the file), not the whole tensor.
TEST_F(CheckpointFiles, ReadsOnlyThePagesOfTheBlock) {
  const int64_t R = 256, C = 4096;  // 16 KiB rows, 4 MiB in all
  const fs::path path = dir_ / "m.safetensors";
  {
    std::vector<float> row(static_cast<size_t>(C));
    SafetensorsWriter w(path.string());
    w.declare("m", DType::F32, {R, C});
    for (int64_t r = 0; r < R; ++r) {
      for (int64_t k = 0; k < C; ++k) row[size_t(k)] = float(r * C + k);
      w.write_block("m", r, 1, 0, C, row.data());
    }
    w.finish();
  }
  const int fd = ::open(path.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  const size_t size = size_t(fs::file_size(path)), ps = size_t(::sysconf(_SC_PAGESIZE));
  const size_t pages = (size + ps - 1) / ps;
  void* probe = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(probe, MAP_FAILED);
  auto resident = [&] {
    std::vector<unsigned char> v(pages);
    EXPECT_EQ(::mincore(probe, size, v.data()), 0);
    size_t n = 0;
    for (unsigned char b : v) n += b & 1;
    return int64_t(n);
  };
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);  // the writer fsynced: the pages are clean
  const bool evicted = resident() == 0;

  SafetensorsReader r(path.string());
  const int64_t header_pages = resident();
  // Columns [1024, 2048) of every row: 4 KiB of each 16 KiB row.
  std::vector<float> blk(size_t(R * 1024));
  r.read_block("m", {R, C}, 0, R, 1024, 1024, blk.data());
  for (int64_t i = 0; i < R; ++i)
    for (int64_t k = 0; k < 1024; ++k) ASSERT_EQ(blk[size_t(i * 1024 + k)], float(i * C + 1024 + k));
  EXPECT_EQ(r.stats().bytes, R * 1024 * 4);
  // Each 4 KiB slice lies on one or two pages (the data section is not page aligned).
  EXPECT_GE(r.stats().pages, R);
  EXPECT_LE(r.stats().pages, 2 * R);
  if (evicted) {
    EXPECT_LE(header_pages, 2);
    EXPECT_EQ(resident() - header_pages, r.stats().pages)
        << "pages in the page cache vs pages the reader counted";
  }
  // Whole rows are one span; ten rows are ten rows' pages (+1 at the boundary), not the tensor.
  const ReadStats before = r.stats();
  r.read_block("m", {R, C}, 100, 10, 0, C, blk.data());
  EXPECT_EQ(r.stats().bytes - before.bytes, 10 * C * 4);
  EXPECT_LE(r.stats().pages - before.pages, 41);
  if (evicted) {
    EXPECT_LE(resident() - header_pages, r.stats().pages);
  }
  ::munmap(probe, size);
  ::close(fd);
  if (!evicted) GTEST_SKIP() << "the page cache did not drop the file here; the page counts were not checked";
}

TEST_F(CheckpointFiles, HeaderAbove100MBIsRefusedWithoutAllocating) {
  // A sparse file large enough to hold the header it claims: only the 100 MB limit stops it.
  const fs::path p = dir_ / "huge.safetensors";
  {
    const uint64_t claimed = (100ull << 20) + 8;
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(&claimed), 8);
  }
  fs::resize_file(p, (101ull << 20) + 64);
  const bool reset = reset_vm_hwm();
  const int64_t hwm_before = vm_hwm_bytes();
  const std::string msg = error_of([&] { SafetensorsReader r(p.string()); });
  EXPECT_CONTAINS(msg, "exceeds the 104857600 byte limit");
  EXPECT_CONTAINS(msg, p.string());
  if (reset) {
    EXPECT_LT(vm_hwm_bytes() - hwm_before, 8 << 20) << "the reader allocated for the claimed header";
  }
  // A length near 2^64 is refused as beyond the file.
  {
    const uint64_t claimed = ~0ull - 4;
    std::ofstream f(p, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(&claimed), 8);
    f << "{}";
  }
  EXPECT_CONTAINS(error_of([&] { SafetensorsReader r(p.string()); }), "extends beyond the file");
}

// --save-dtype bf16: model.safetensors is HF BF16 (config.json says bfloat16) and loads as the rounded
// weights; a training checkpoint keeps the exact fp32 weights as master.* in optimizer.safetensors, and
// resuming from it restores every bit.
TEST_F(CheckpointFiles, Bf16WeightsWithExactMastersForResume) {
  const ModelConfig c = small_config();
  ModelParams<float> p(c, ShardSpec::full(c), true);
  p.init(5);
  AdamW<float> opt(p, {});
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i) opt.m(b)[i] = 1e-3f * float(i % 7), opt.v(b)[i] = 0.5f;
  opt.set_t(9);
  TrainState st;
  st.step = 9;
  st.data_position = 9;
  st.optimizer_step = 9;
  CheckpointWriteOptions o;
  o.weight_dtype = parse_save_dtype("bf16");
  const fs::path ck = dir_ / "ck";
  save_checkpoint<float>(ck.string(), p, &opt, &st, nullptr, o);

  EXPECT_EQ(nlohmann::json::parse(read_all(ck / "config.json"))["torch_dtype"], "bfloat16");
  const SafetensorsSetReader model(ck.string(), "model");
  for (const std::string& n : model.names()) EXPECT_EQ(model.info(n).dtype, DType::BF16) << n;
  const SafetensorsSetReader state(ck.string(), "optimizer");
  EXPECT_TRUE(state.has("master.model.embed_tokens.weight"));
  EXPECT_EQ(state.info("master.model.embed_tokens.weight").dtype, DType::F32);

  // Weights only (generate, eval, --init-from): bf16-rounded, and not equal to the exact ones.
  ModelParams<float> w(c, ShardSpec::full(c), false);
  load_checkpoint<float>(ck.string(), w, nullptr, nullptr);
  bool rounded_differs = false;
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i) {
      ASSERT_EQ(w.value(b)[i], bf16_to_float(float_to_bf16(p.value(b)[i])));
      rounded_differs |= w.value(b)[i] != p.value(b)[i];
    }
  EXPECT_TRUE(rounded_differs);

  // Resume: the exact weights and moments.
  ModelParams<float> r(c, ShardSpec::full(c), true);
  AdamW<float> ropt(r, {});
  TrainState rst;
  load_checkpoint<float>(ck.string(), r, &ropt, &rst);
  EXPECT_EQ(ropt.t(), 9);
  for (int b = 0; b < p.num_blocks(); ++b)
    for (int64_t i = 0; i < p.value(b).size(); ++i) {
      ASSERT_EQ(r.value(b)[i], p.value(b)[i]);
      ASSERT_EQ(ropt.m(b)[i], opt.m(b)[i]);
    }

  // The run's own dtype writes no masters.
  save_checkpoint<float>((dir_ / "plain").string(), p, &opt, &st, nullptr, CheckpointWriteOptions{});
  EXPECT_FALSE(
      SafetensorsSetReader((dir_ / "plain").string(), "optimizer").has("master.model.embed_tokens.weight"));
  EXPECT_CONTAINS(error_of([] { parse_save_dtype("int8"); }), "--save-dtype int8: allowed bf16");
}

// Real checkpoints made hostile: truncated, tensors overlapping, a dtype config.json does not declare, a
// header above the limit. Each load is refused with the file named, and nothing reaches the parameters.
class HostileCheckpoint : public CheckpointFiles, public ::testing::WithParamInterface<bool> {
 protected:
  // Saves a real checkpoint (sharded into several files when GetParam()) and returns its directory.
  fs::path save(const std::string& name) {
    const ModelConfig c = small_config();
    ModelParams<float> p(c, ShardSpec::full(c), false);
    p.init(3);
    CheckpointWriteOptions o;
    if (GetParam()) o.max_shard_bytes = 20000;
    save_checkpoint<float>((dir_ / name).string(), p, nullptr, nullptr, nullptr, o);
    EXPECT_EQ(fs::exists(dir_ / name / "model.safetensors.index.json"), GetParam());
    return dir_ / name;
  }
  // The file holding tensor `name` in checkpoint `ck`.
  static fs::path file_with(const fs::path& ck, const std::string& name) {
    return SafetensorsSetReader(ck.string(), "model").file_of(name).path();
  }
  // load_checkpoint's message; expects that it failed and left the parameters untouched.
  static std::string refused(const fs::path& ck) {
    const ModelConfig c = small_config();
    ModelParams<float> p(c, ShardSpec::full(c), false);
    fill_sentinel(p);
    std::string msg;
    try {
      load_checkpoint<float>(ck.string(), p, nullptr, nullptr);
    } catch (const UsageError& e) {
      msg = e.what();
    }
    EXPECT_FALSE(msg.empty()) << "the load was not refused";
    EXPECT_TRUE(all_sentinel(p)) << "a refused load wrote parameters";
    return msg;
  }
};

TEST_P(HostileCheckpoint, TruncatedFile) {
  const fs::path ck = save("ck");
  const fs::path f = file_with(ck, "lm_head.weight");
  fs::resize_file(f, fs::file_size(f) - 100);
  const std::string msg = refused(ck);
  EXPECT_CONTAINS(msg, f.string());
  EXPECT_CONTAINS(msg, "truncated");
  fs::resize_file(f, 5);
  EXPECT_CONTAINS(refused(ck), "too short");
}

TEST_P(HostileCheckpoint, OverlappingTensors) {
  const fs::path ck = save("ck");
  // gate_proj and up_proj have the same shape: point up_proj at gate_proj's bytes.
  const std::string gate = "model.layers.1.mlp.gate_proj.weight", up = "model.layers.1.mlp.up_proj.weight";
  const fs::path f = file_with(ck, gate);
  ASSERT_EQ(f, file_with(ck, up));
  auto [header, data] = split_file(f);
  header[up]["data_offsets"] = header[gate]["data_offsets"];
  join_file(f, header, data);
  const std::string msg = refused(ck);
  EXPECT_CONTAINS(msg, "overlaps");
  EXPECT_CONTAINS(msg, f.string());
  EXPECT_CONTAINS(msg, up);
}

TEST_P(HostileCheckpoint, TensorsBeyondTheEndOfTheFile) {
  const fs::path ck = save("ck");
  const std::string name = "model.embed_tokens.weight";
  const fs::path f = file_with(ck, name);
  auto [header, data] = split_file(f);
  const uint64_t n =
      header[name]["data_offsets"][1].get<uint64_t>() - header[name]["data_offsets"][0].get<uint64_t>();
  header[name]["data_offsets"] = {data.size() - n / 2, data.size() - n / 2 + n};
  join_file(f, header, data);
  const std::string msg = refused(ck);
  EXPECT_CONTAINS(msg, name);
  EXPECT_CONTAINS(msg, "beyond the data section");
}

TEST_P(HostileCheckpoint, DtypeNotMatchingTheConfig) {
  const fs::path ck = save("ck");
  const fs::path cfg = ck / "config.json";
  nlohmann::json j = nlohmann::json::parse(read_all(cfg));
  ASSERT_EQ(j.at("torch_dtype"), "float32");
  j["torch_dtype"] = "bfloat16";
  write_all(cfg, j.dump());
  std::string msg = refused(ck);
  EXPECT_CONTAINS(msg, "is stored as F32, but");
  EXPECT_CONTAINS(msg, "torch_dtype says bfloat16");
  // Newer transformers write "dtype".
  j.erase("torch_dtype");
  j["dtype"] = "float16";
  write_all(cfg, j.dump());
  EXPECT_CONTAINS(refused(ck), "torch_dtype says float16");
  j["dtype"] = "int8";
  write_all(cfg, j.dump());
  EXPECT_CONTAINS(refused(ck), "\"int8\"");
  // A tensor whose dtype was changed in the header, with the config still saying float32.
  j.erase("dtype");
  j["torch_dtype"] = "float32";
  write_all(cfg, j.dump());
  const std::string name = "model.norm.weight";
  const fs::path f = file_with(ck, name);
  auto [header, data] = split_file(f);
  header[name]["dtype"] = "F16";
  header[name]["shape"] = {2 * header[name]["shape"][0].get<int64_t>()};  // the same bytes
  join_file(f, header, data);
  msg = refused(ck);
  EXPECT_CONTAINS(msg, name);
  EXPECT_CONTAINS(msg, "is stored as F16, but");
  EXPECT_CONTAINS(msg, "torch_dtype says float32");
  // Without a torch_dtype in config.json any float dtype loads, but the shape must still be the model's.
  j.erase("torch_dtype");
  write_all(cfg, j.dump());
  msg = refused(ck);
  EXPECT_CONTAINS(msg, name);
  EXPECT_CONTAINS(msg, "has shape [64], but the model needs [32]");
}

TEST_P(HostileCheckpoint, HeaderAbove100MB) {
  const fs::path ck = save("ck");
  const fs::path f = file_with(ck, "model.norm.weight");
  const std::string all = read_all(f);
  const uint64_t claimed = (100ull << 20) + 1;
  write_all(f, std::string(reinterpret_cast<const char*>(&claimed), 8) + all.substr(8));
  fs::resize_file(f, claimed + 4096);  // sparse: the file is long enough to hold what it claims
  const std::string msg = refused(ck);
  EXPECT_CONTAINS(msg, "exceeds the 104857600 byte limit");
  EXPECT_CONTAINS(msg, f.string());
}

INSTANTIATE_TEST_SUITE_P(Layouts, HostileCheckpoint, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "Sharded" : "SingleFile"; });

}  // namespace
}  // namespace tsp

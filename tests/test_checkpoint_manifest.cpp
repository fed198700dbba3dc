// The manifest and trainer_state.json formats, and checkpoint verification on one process: what a damaged
// or hostile file is refused with (the multi-rank behaviour is in tests/cli/reliability/).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "core/file_checksum.h"
#include "core/json_integer.h"
#include "train/checkpoint_manager.h"
#include "train/train_state.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

TEST(Manifest, RoundTripsAndRefusesPathsOutsideTheCheckpoint) {
  Manifest m;
  m.step = 42;
  m.files = {{"model.safetensors", 123, 0xdeadbeef}, {"shards/a.safetensors", 0, 0}};
  const Manifest back = parse_manifest(manifest_json(m), "m");
  ASSERT_EQ(back.files.size(), 2u);
  EXPECT_EQ(back.step, 42);
  EXPECT_EQ(back.files[0].crc32, 0xdeadbeefu);
  EXPECT_EQ(back.files[1].path, "shards/a.safetensors");
  auto with_path = [](const std::string& p) {
    return "{\"format\":\"tsp-checkpoint-manifest\",\"version\":1,\"step\":1,\"files\":[{\"path\":\"" + p +
           "\",\"size\":1,\"crc32\":\"0x00000000\"}]}";
  };
  for (const char* bad : {"../x", "/etc/passwd", "a/../../b", "", "a//b", "./a"})
    EXPECT_THROW(parse_manifest(with_path(bad), "m"), UsageError) << bad;
  EXPECT_NO_THROW(parse_manifest(with_path("a..b"), "m"));
  EXPECT_THROW(
      parse_manifest("{\"format\":\"tsp-checkpoint-manifest\",\"version\":2,\"step\":1,\"files\":[]}", "m"),
      UsageError);
  EXPECT_THROW(parse_manifest("[1, 2]", "m"), UsageError);
  EXPECT_THROW(
      parse_manifest("{\"format\":\"tsp-checkpoint-manifest\",\"version\":1,\"step\":1,\"files\":[{\"path\":"
                     "\"a\",\"size\":1,\"crc32\":\"0x1234\"}]}",
                     "m"),
      UsageError);
}

TEST(Manifest, StepDirectoryNames) {
  int64_t s = -1;
  EXPECT_EQ(step_dir_name(100), "step-000100");
  EXPECT_EQ(step_dir_name(12345678), "step-12345678");
  EXPECT_TRUE(parse_step_name("step-000100", &s));
  EXPECT_EQ(s, 100);
  for (const char* bad : {"step_000100", "step-00010", "step-0001x0", ".step-000100.partial", "step-"})
    EXPECT_FALSE(parse_step_name(bad, nullptr)) << bad;
}

TEST(Manifest, VerificationNamesTheFileAndTheProblem) {
  const fs::path d = fs::temp_directory_path() / fmt::format("tsp_manifest_{}", ::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  { std::ofstream(d / "a.bin") << "hello world"; }
  EXPECT_EQ(checkpoint_problem(d.string(), nullptr, false), "");  // no manifest: an HF directory
  EXPECT_NE(checkpoint_problem(d.string(), nullptr, true).find("has no manifest.json"), std::string::npos);
  const FileDigest dg = file_digest((d / "a.bin").string());
  EXPECT_EQ(dg.size, 11u);
  EXPECT_EQ(crc32_hex(dg.crc32), "0x0d4a1185");  // CRC-32 of "hello world" (zlib, gzip, PNG)
  Manifest m;
  m.files = {{"a.bin", dg.size, dg.crc32}};
  { std::ofstream(d / kManifestFile) << manifest_json(m); }
  EXPECT_EQ(checkpoint_problem(d.string(), nullptr, true), "");
  { std::ofstream(d / "a.bin") << "hello wOrld"; }
  EXPECT_NE(checkpoint_problem(d.string(), nullptr, true).find("a.bin: CRC-32 "), std::string::npos);
  { std::ofstream(d / "a.bin") << "hello"; }
  EXPECT_NE(checkpoint_problem(d.string(), nullptr, true).find("a.bin: 5 bytes, but manifest.json lists 11"),
            std::string::npos);
  fs::remove(d / "a.bin");
  EXPECT_NE(checkpoint_problem(d.string(), nullptr, true).find("a.bin: missing"), std::string::npos);
  fs::remove_all(d);
}

TEST(TrainStateFile, RoundTripAndInconsistentCounters) {
  TrainState s;
  s.step = 10;
  s.data_position = 10;
  s.seed = 7;
  s.optimizer_step = 8;
  s.skipped_nonfinite = 2;
  s.data = {{"kind", "recall"}, {"keys", 16}};
  const TrainState t = parse_train_state(train_state_json(s), "t");
  EXPECT_EQ(t.optimizer_step, 8);
  EXPECT_EQ(t.skipped_nonfinite, 2);
  EXPECT_EQ(t.data, s.data);
  // Written before skipped_nonfinite and data existed: still reads.
  EXPECT_EQ(parse_train_state("{\"step\":3,\"data_position\":3,\"seed\":1,\"optimizer_step\":3}", "t").step,
            3);
  EXPECT_THROW(parse_train_state("{\"step\":3,\"data_position\":3,\"seed\":1,\"optimizer_step\":4}", "t"),
               UsageError);
  EXPECT_THROW(parse_train_state("{\"step\":\"3\"}", "t"), UsageError);
  EXPECT_THROW(
      parse_train_state("{\"step\":3,\"data_position\":3,\"seed\":1,\"optimizer_step\":3,\"data\":5}", "t"),
      UsageError);
}

// Numbers a cast cannot hold are refused by name, not converted (fuzz/regressions/fuzz_manifest: a step of
// 1e30 reached nlohmann's get<int64_t>(), a float-to-integer cast UBSan aborts on).
TEST(JsonInteger, OnlyJsonIntegersInRange) {
  using nlohmann::json;
  EXPECT_EQ(json_integer_if<int32_t>(json(-5)), -5);
  EXPECT_EQ(json_integer_if<uint64_t>(json(UINT64_MAX)), UINT64_MAX);
  EXPECT_EQ(json_integer_if<int64_t>(json(INT64_MIN)), INT64_MIN);
  for (const json& bad : {json(1e30), json(1.5), json(-1e30), json("1"), json(true), json(nullptr)})
    EXPECT_FALSE(json_integer_if<int64_t>(bad).has_value()) << bad.dump();
  EXPECT_FALSE(json_integer_if<uint32_t>(json(-1)).has_value());
  EXPECT_FALSE(json_integer_if<int32_t>(json(int64_t(1) << 31)).has_value());
  EXPECT_FALSE(json_integer_if<int64_t>(json(UINT64_MAX)).has_value());
  try {
    json_integer_at<int64_t>(json{{"step", 1e30}}, "step", "trainer_state.json");
    ADD_FAILURE() << "1e30 accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("trainer_state.json: \"step\" must be an integer"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(json_integer_at<int64_t>(json{{"a", nullptr}}, "a", "w", 7), 7);
  EXPECT_THROW(json_integer_at<int64_t>(json::object(), "a", "w"), UsageError);
}

TEST(Manifest, AndTrainStateRefuseNumbersNoIntegerHolds) {
  for (const char* step : {"1e30", "1.5", "-1e300", "\"1\""})
    EXPECT_THROW(
        parse_manifest(std::string("{\"format\":\"tsp-checkpoint-manifest\",\"version\":1,\"step\":") + step +
                           ",\"files\":[]}",
                       "m"),
        UsageError)
        << step;
  EXPECT_THROW(parse_manifest(
                   "{\"format\":\"tsp-checkpoint-manifest\",\"version\":1e300,\"step\":1,\"files\":[]}", "m"),
               UsageError);
  EXPECT_THROW(parse_manifest("{\"format\":\"tsp-checkpoint-manifest\",\"version\":1,\"step\":1,\"files\":[{"
                              "\"path\":\"a\",\"size\":-1,\"crc32\":\"0x00000000\"}]}",
                              "m"),
               UsageError);
  for (const char* field : {"step", "data_position", "seed", "optimizer_step", "skipped_nonfinite"}) {
    nlohmann::json j = {{"step", 3}, {"data_position", 3}, {"seed", 1}, {"optimizer_step", 3}};
    j[field] = 1e30;
    EXPECT_THROW(parse_train_state(j.dump(), "t"), UsageError) << field;
  }
}

}  // namespace
}  // namespace tsp

// Stop tokens as HF's generate() finds them: generation_config.json's eos_token_id first, else config.json's;
// an id, a list or null; anything else is a UsageError naming the file.
#include <gtest/gtest.h>

#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/check.h"
#include "infer/generation_config.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

struct Dir {
  fs::path p = fs::temp_directory_path() / ("tsp_gencfg_" + std::to_string(::getpid()) + "_" +
                                            std::to_string(reinterpret_cast<uintptr_t>(this)));
  Dir() { fs::create_directories(p); }
  ~Dir() { fs::remove_all(p); }
  void write(const std::string& name, const std::string& text) { std::ofstream(p / name) << text; }
};

TEST(GenerationConfig, ReadsTheStopTokensAsHfDoes) {
  Dir d;
  EXPECT_TRUE(eos_token_ids(d.p.string()).empty());  // neither file
  d.write("config.json", R"({"eos_token_id": 2, "hidden_size": 8})");
  EXPECT_EQ(eos_token_ids(d.p.string()), (std::vector<int32_t>{2}));
  d.write("generation_config.json", R"({"eos_token_id": [128001, 128009], "do_sample": true})");
  EXPECT_EQ(eos_token_ids(d.p.string()), (std::vector<int32_t>{128001, 128009}));
  d.write("generation_config.json", R"({"eos_token_id": null})");
  EXPECT_TRUE(eos_token_ids(d.p.string()).empty());
  d.write("generation_config.json", R"({"max_length": 20})");  // no field: config.json's
  EXPECT_EQ(eos_token_ids(d.p.string()), (std::vector<int32_t>{2}));
}

TEST(GenerationConfig, RejectsWhatIsNotATokenId) {
  Dir d;
  d.write("config.json", R"({"eos_token_id": "</s>"})");
  EXPECT_THROW(eos_token_ids(d.p.string()), UsageError);
  d.write("config.json", R"({"eos_token_id": [1, -3]})");
  EXPECT_THROW(eos_token_ids(d.p.string()), UsageError);
  d.write("config.json", R"({"eos_token_id": 1)");
  EXPECT_THROW(eos_token_ids(d.p.string()), UsageError);
}

}  // namespace
}  // namespace tsp

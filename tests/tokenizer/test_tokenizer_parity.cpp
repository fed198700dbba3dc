// Parity with Hugging Face tokenizers on real tokenizer.json files (Llama 3 and Qwen3: byte-level BPE; a
// Llama-2-style 32,000-token BPE with byte fallback): ids (with and without special tokens) and decoded text
// on a multilingual corpus (emoji, CJK, code, whitespace runs, special tokens, this repository's README), and
// decoded text of random id sequences. The expected values come from @lenml/tokenizers (a JS port of HF
// tokenizers), computed by fetch_reference.sh in the test set-up (the fixture tokenizer_parity_setup).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/tokenizer.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const json& expected() {
  static const json j = [] {
    const char* dir = std::getenv("TSP_PARITY_DIR");
    if (!dir) return json();
    std::ifstream f(fs::path(dir) / "expected.json");
    return f ? json::parse(f) : json();
  }();
  return j;
}

std::string skip_reason() {
  const char* dir = std::getenv("TSP_PARITY_DIR");
  if (!dir) return "TSP_PARITY_DIR is not set (run through ctest, which fetches the reference first)";
  std::ifstream skip(fs::path(dir) / "SKIP");
  if (skip) return std::string((std::istreambuf_iterator<char>(skip)), {});
  if (expected().is_null()) return fmt::format("{}/expected.json is missing (the set-up failed)", dir);
  return {};
}

std::string show(const std::vector<int32_t>& v) {
  return json(v).dump();
}

void check_tokenizer(const std::string& name) {
  const std::string why = skip_reason();
  if (!why.empty()) GTEST_SKIP() << "tokenizer parity skipped: " << why;
  const json& e = expected().at(name);
  auto tok = load_tokenizer(e.at("dir").get<std::string>());
  int mismatches = 0;
  for (const auto& c : e.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    const std::string where = json(text.substr(0, 120)).dump();
    const auto ids = tok->encode(text);
    const auto want = c.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(ids, want) << name << " encode " << where << "\n got  " << show(ids) << "\n want "
                         << show(want);
    EXPECT_EQ(tok->encode(text, /*add_special_tokens=*/false),
              c.at("ids_no_special").get<std::vector<int32_t>>())
        << name << " encode without special tokens " << where;
    EXPECT_EQ(tok->decode(want), c.at("decoded").get<std::string>()) << name << " decode " << where;
    EXPECT_EQ(tok->decode(want, /*skip_special_tokens=*/true),
              c.at("decoded_skip_special").get<std::string>())
        << name << " decode skipping special tokens " << where;
    mismatches += ids != want;
  }
  for (const auto& r : e.at("random")) {
    const auto ids = r.at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(tok->decode(ids), r.at("decoded").get<std::string>()) << name << " decode " << show(ids);
    EXPECT_EQ(tok->decode(ids, true), r.at("decoded_skip_special").get<std::string>())
        << name << " decode skipping special tokens " << show(ids);
  }
  EXPECT_EQ(mismatches, 0) << name << ": " << mismatches << " of " << e.at("cases").size() << " texts differ";
}

TEST(TokenizerParity, Llama3ByteLevelBpe) {
  check_tokenizer("llama3");
}
TEST(TokenizerParity, Qwen3ByteLevelBpeWithNfc) {
  check_tokenizer("qwen3");
}
TEST(TokenizerParity, Llama2MetaspaceBpeWithByteFallback) {
  check_tokenizer("llama2");
}

// SentencePiece: tokenizer.model through libsentencepiece against Debian's spm_encode / spm_decode on models
// spm_train made in the set-up (spm_reference.sh), BPE and unigram, with byte fallback.
void check_sentencepiece(const std::string& model_type) {
  const char* dir = std::getenv("TSP_SPM_DIR");
  if (!dir) GTEST_SKIP() << "TSP_SPM_DIR is not set (run through ctest, which trains the models first)";
  const fs::path d = fs::path(dir) / model_type;
  auto tok = load_tokenizer(d.string());
  auto lines_of = [](const fs::path& p) {
    std::ifstream f(p);
    std::vector<std::string> v;
    for (std::string l; std::getline(f, l);) v.push_back(l);
    return v;
  };
  const auto lines = lines_of(fs::path(dir) / "lines.txt"), ids = lines_of(d / "ids.txt"),
             text = lines_of(d / "decoded.txt");
  ASSERT_EQ(lines.size(), ids.size());
  ASSERT_EQ(lines.size(), text.size());
  ASSERT_GT(lines.size(), 100u);
  for (size_t i = 0; i < lines.size(); ++i) {
    std::vector<int32_t> want;
    std::istringstream in(ids[i]);
    for (int32_t x; in >> x;) want.push_back(x);
    EXPECT_EQ(tok->encode(lines[i]), want) << model_type << " " << json(lines[i]).dump();
    EXPECT_EQ(tok->decode(want, /*skip_special_tokens=*/true), text[i])
        << model_type << " decode " << show(want);
  }
  EXPECT_EQ(tok->encode("x", false).front(), tok->encode("x").at(1))
      << "BOS comes first, only with special tokens";
}

TEST(SentencePieceParity, Bpe) {
  check_sentencepiece("bpe");
}
TEST(SentencePieceParity, Unigram) {
  check_sentencepiece("unigram");
}

}  // namespace
}  // namespace tsp

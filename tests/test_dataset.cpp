// Tokenized datasets: the on-disk format (uint16/uint32, index, manifest, corrupt files), tsp tokenize's
// corpus writer (documents, EOS, .jsonl, separators, atomic output, resume after an interruption), and the
// packed training stream (every token once per epoch, shuffled by seed, exact resume, validation split).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "core/check.h"
#include "data/packed_dataset.h"
#include "data/token_dataset.h"
#include "data/tokenize_corpus.h"
#include "tokenizer/byte_tokenizer.h"
#include "usage_error.h"

namespace tsp {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() : dir_(fs::temp_directory_path() / fmt::format("tsp_test_dataset_{}", std::random_device()())) {
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  fs::path operator/(const std::string& name) const { return dir_ / name; }

 private:
  fs::path dir_;
};

// Bytes plus an EOS token 256 (and, to test failures, a document that makes it throw).
class BytesWithEos : public ByteTokenizer {
 public:
  explicit BytesWithEos(int64_t vocab = 257) : vocab_(vocab) {}
  std::vector<int32_t> encode(std::string_view text, bool, bool) const override {
    TSP_CHECK(!(fail && text.find("BOOM") != std::string_view::npos), "injected failure");
    return byte_tokenize(std::string(text));
  }
  int64_t vocab_size() const override { return vocab_; }
  std::optional<int32_t> eos_id() const override { return 256; }
  std::string describe() const override { return "bytes + EOS"; }
  bool fail = false;

 private:
  int64_t vocab_;
};

void write_file(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary) << s;
}

// A dataset of `docs` random documents (lengths 1..max_len, EOS 256 last), written directly.
std::vector<std::vector<int32_t>> write_random_dataset(const fs::path& dir, int docs, int max_len,
                                                       uint32_t seed, int64_t vocab = 257) {
  fs::create_directories(dir);
  std::mt19937 rng(seed);
  std::vector<std::vector<int32_t>> all;
  TokenDatasetWriter w(dir.string(), vocab);
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> t(size_t(1 + rng() % uint32_t(max_len)));
    for (auto& x : t) x = int32_t(rng() % 256);
    t.push_back(256);
    w.add_document(t);
    all.push_back(t);
  }
  w.finish();
  const nlohmann::json m = {{"format", kDatasetFormat},
                            {"version", kDatasetVersion},
                            {"dtype", w.bytes_per_token() == 2 ? "uint16" : "uint32"},
                            {"vocab_size", vocab},
                            {"eos_id", 256},
                            {"documents", w.documents()},
                            {"tokens", w.tokens()}};
  std::ofstream(dir / "manifest.json") << m.dump();
  return all;
}

using testing::usage_error;

TEST(TokenDataset, RoundTripBothWidths) {
  TempDir t;
  for (int64_t vocab : {257, 70000}) {
    const fs::path d = t / fmt::format("v{}", vocab);
    auto docs = write_random_dataset(d, 20, 50, 3, vocab);
    TokenDataset ds(d.string());
    EXPECT_EQ(fs::file_size(d / "tokens.bin"), size_t(ds.tokens()) * (vocab <= 65536 ? 2 : 4));
    ASSERT_EQ(ds.documents(), 20);
    for (int k = 0; k < 20; ++k) {
      std::vector<int32_t> got(size_t(ds.doc_length(k)));
      ds.read(ds.doc_begin(k), ds.doc_length(k), got.data());
      EXPECT_EQ(got, docs[size_t(k)]);
    }
  }
}

TEST(TokenDataset, CorruptFilesAreRefused) {
  TempDir t;
  write_random_dataset(t / "d", 5, 10, 1);
  fs::resize_file(t / "d" / "tokens.bin", fs::file_size(t / "d" / "tokens.bin") - 2);
  EXPECT_NE(usage_error([&] { TokenDataset x((t / "d").string()); }).find("tokens.bin holds"),
            std::string::npos);
  EXPECT_NE(usage_error([&] { TokenDataset x((t / "none").string()); }).find("no manifest.json"),
            std::string::npos);
  // Counts that are not integers of their range are refused by name (not cast: undefined for 1e30).
  write_random_dataset(t / "m", 5, 10, 1);
  for (const nlohmann::json& bad : {nlohmann::json(1e30), nlohmann::json(-3), nlohmann::json(2.5)}) {
    std::ifstream in(t / "m" / "manifest.json");
    nlohmann::json m = nlohmann::json::parse(in);
    in.close();
    m["documents"] = bad;
    std::ofstream(t / "m" / "manifest.json") << m.dump();
    EXPECT_NE(
        usage_error([&] { TokenDataset x((t / "m").string()); }).find("\"documents\" must be an integer"),
        std::string::npos)
        << bad.dump();
  }
}

TEST(TokenizeCorpus, DocumentsEosJsonlAndSeparator) {
  TempDir t;
  write_file(t / "a.txt", "first doc");
  write_file(t / "b.jsonl", "{\"text\": \"two\"}\n\n{\"text\": \"three\", \"id\": 3}\n{\"text\": \"\"}\n");
  write_file(t / "c.txt", "x||yy||||z");
  BytesWithEos tok;
  TokenizeCorpusOptions o;
  o.inputs = {(t / "a.txt").string(), (t / "b.jsonl").string()};
  o.output = (t / "ds").string();
  o.progress = false;
  const auto m = tokenize_corpus(tok, o);
  EXPECT_EQ(m["documents"], 3);  // the empty .jsonl text is skipped
  EXPECT_FALSE(fs::exists(t / "ds.partial"));
  TokenDataset ds(o.output);
  std::vector<int32_t> all(size_t(ds.tokens()));
  ds.read(0, ds.tokens(), all.data());
  std::vector<int32_t> want = byte_tokenize("first doc");
  want.push_back(256);
  for (const char* s : {"two", "three"}) {
    for (int32_t b : byte_tokenize(s)) want.push_back(b);
    want.push_back(256);
  }
  EXPECT_EQ(all, want);
  EXPECT_NE(usage_error([&] { tokenize_corpus(tok, o); }).find("already exists"), std::string::npos);

  o.inputs = {(t / "c.txt").string()};
  o.output = (t / "ds2").string();
  o.separator = "||";
  EXPECT_EQ(tokenize_corpus(tok, o)["documents"], 3);  // x, yy, z (empty pieces skipped)
}

TEST(TokenizeCorpus, ResumesAfterAnInterruption) {
  TempDir t;
  write_file(t / "a.txt", "alpha");
  write_file(t / "b.txt", "beta BOOM");
  write_file(t / "c.txt", "gamma");
  BytesWithEos tok;
  TokenizeCorpusOptions o;
  o.inputs = {(t / "a.txt").string(), (t / "b.txt").string(), (t / "c.txt").string()};
  o.output = (t / "ds").string();
  o.progress = false;
  tok.fail = true;
  EXPECT_THROW(tokenize_corpus(tok, o), Error);
  EXPECT_FALSE(fs::exists(t / "ds"));  // nothing half-written under the final name
  EXPECT_TRUE(fs::exists(t / "ds.partial" / "progress.json"));
  tok.fail = false;
  const auto m = tokenize_corpus(tok, o);  // resumes after a.txt
  EXPECT_EQ(m["documents"], 3);
  EXPECT_EQ(m["bytes_tokenized"], fs::file_size(t / "b.txt") + fs::file_size(t / "c.txt"));
  // The same bytes as a run that was never interrupted.
  TokenizeCorpusOptions straight = o;
  straight.output = (t / "straight").string();
  tokenize_corpus(tok, straight);
  for (const char* f : {"tokens.bin", "documents.idx"}) {
    std::ifstream x(t / "ds" / f, std::ios::binary), y(t / "straight" / f, std::ios::binary);
    EXPECT_EQ(std::string(std::istreambuf_iterator<char>(x), {}),
              std::string(std::istreambuf_iterator<char>(y), {}))
        << f;
  }
}

TEST(PackedDataset, EveryTrainingTokenOncePerEpochShuffledBySeed) {
  TempDir t;
  auto docs = write_random_dataset(t / "d", 40, 30, 7);
  PackedDataset a((t / "d").string(), 5), b((t / "d").string(), 5), c((t / "d").string(), 6);
  const int64_t n = a.train_tokens();
  // One epoch in sequences of 16 (+1): the inputs of the first n / 16 sequences are the epoch's tokens.
  const int64_t S = 16, seqs = n / S;
  Batch ba = a.next(seqs, S), bb = b.next(seqs, S), bc = c.next(seqs, S);
  EXPECT_EQ(ba.tokens, bb.tokens);
  EXPECT_NE(ba.tokens, bc.tokens);
  for (int64_t i = 0; i + 1 < seqs * S; ++i) EXPECT_EQ(ba.targets[size_t(i)], ba.tokens[size_t(i + 1)]);
  std::map<int32_t, int64_t> hist_stream, hist_docs;
  for (int64_t i = 0; i < seqs * S; ++i) ++hist_stream[ba.tokens[size_t(i)]];
  // The epoch's multiset of tokens equals the documents' (up to the tail that did not fill a sequence).
  int64_t counted = 0;
  for (const auto& d : docs)
    for (int32_t x : d) ++hist_docs[x], ++counted;
  EXPECT_EQ(counted, n);
  int64_t diff = 0;
  for (auto& [k, v] : hist_docs) diff += std::abs(v - hist_stream[k]);
  EXPECT_LE(diff, n - seqs * S);
}

TEST(PackedDataset, SeekContinuesExactlyAcrossShapesAndEpochs) {
  TempDir t;
  write_random_dataset(t / "d", 10, 20, 9);
  PackedDataset a((t / "d").string(), 1);
  // Variable shapes (as under the sequence-length warm-up), running through several epochs.
  std::vector<std::pair<int64_t, int64_t>> shapes = {{4, 8},  {2, 16}, {1, 32}, {3, 8},
                                                     {2, 16}, {4, 16}, {1, 64}};
  std::vector<Batch> straight;
  std::vector<int64_t> positions;
  for (auto [B, S] : shapes) {
    positions.push_back(a.position());
    straight.push_back(a.next(B, S));
  }
  EXPECT_GT(a.position(), 2 * a.train_tokens());
  for (size_t k = 0; k < shapes.size(); ++k) {
    PackedDataset r((t / "d").string(), 1);
    r.seek(positions[k]);
    Batch got = r.next(shapes[k].first, shapes[k].second);
    EXPECT_EQ(got.tokens, straight[k].tokens) << "batch " << k;
    EXPECT_EQ(got.targets, straight[k].targets) << "batch " << k;
  }
}

TEST(PackedDataset, ValidationSplitIsHeldOutAndFixed) {
  TempDir t;
  write_random_dataset(t / "d", 50, 40, 11);
  PackedDataset a((t / "d").string(), 3, 0.2), b((t / "d").string(), 3, 0.2);
  EXPECT_EQ(a.validation_documents(), 10);
  EXPECT_EQ(a.train_tokens() + a.validation_tokens(), a.dataset().tokens());
  ASSERT_GT(a.validation_batches(2, 16), 0);
  EXPECT_EQ(a.validation_batch(0, 2, 16).tokens, b.validation_batch(0, 2, 16).tokens);
  a.next(8, 16);
  EXPECT_EQ(a.validation_batch(0, 2, 16).tokens,
            b.validation_batch(0, 2, 16).tokens);  // unaffected by training
  EXPECT_EQ(a.validation_batches(2, 16), (a.validation_tokens() - 1) / 16 / 2);
  EXPECT_NE(usage_error([&] { PackedDataset x((t / "d").string(), 3, 1.5); }).find("--val-fraction"),
            std::string::npos);
  EXPECT_EQ(PackedDataset((t / "d").string(), 3).validation_batches(2, 16), 0);
}

}  // namespace
}  // namespace tsp

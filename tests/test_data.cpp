// Training data: byte tokenizer, text windows, and the associative recall task (layout, targets,
// determinism, resumption, answer distances).
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>

#include "core/check.h"
#include "kernels/cross_entropy.h"
#include "train/data.h"

namespace fs = std::filesystem;
using tsp::kernels::kIgnoreIndex;

namespace {

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    dir_ = fs::temp_directory_path() / ("tsp_test_data_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(dir_);
  }
  ~TempDir() { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& contents) const {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << contents;
    return p;
  }

 private:
  fs::path dir_;
};

bool same_batch(const tsp::Batch& a, const tsp::Batch& b) {
  return a.batch == b.batch && a.seq_len == b.seq_len && a.tokens == b.tokens && a.targets == b.targets;
}

template <class F>
std::string usage_error(F&& f) {
  try {
    f();
  } catch (const tsp::UsageError& e) {
    return e.what();
  }
  return "";
}

// Token ids of the recall map documented in data.h.
struct RecallMap {
  int32_t keys, values, query, separator, fact0, filler0;
  explicit RecallMap(const tsp::RecallSpec& s)
      : keys(int32_t(s.num_keys)),
        values(int32_t(s.num_values)),
        query(int32_t(s.num_keys + s.num_values)),
        separator(query + 1),
        fact0(query + 2),
        filler0(fact0 + int32_t(s.num_keys * s.num_values)) {}
  bool is_key(int32_t t) const { return t >= 0 && t < keys; }
  bool is_fact(int32_t t) const { return t >= fact0 && t < filler0; }
  int32_t fact_key(int32_t t) const { return (t - fact0) / values; }
  int32_t fact_value(int32_t t) const { return keys + (t - fact0) % values; }
  bool is_filler(int32_t t) const { return t >= filler0 && t < filler0 + tsp::RecallTask::kFillerTokens; }
};

// Checks one recall sequence against the documented layout and returns, per query, how far back the answer
// is.
std::vector<int64_t> check_recall_sequence(const tsp::RecallSpec& s, const int32_t* tok, const int32_t* tgt,
                                           int64_t seq_len) {
  const RecallMap m(s);
  const int64_t context = seq_len - 2 * s.queries - 1;
  // Context: exactly `pairs` facts with distinct keys; everything else filler.
  std::map<int32_t, int64_t> fact_pos;
  for (int64_t p = 0; p < context; ++p) {
    if (m.is_fact(tok[p])) {
      EXPECT_EQ(fact_pos.count(m.fact_key(tok[p])), 0u) << "key " << m.fact_key(tok[p]) << " appears twice";
      fact_pos[m.fact_key(tok[p])] = p;
    } else {
      EXPECT_TRUE(m.is_filler(tok[p])) << "token " << tok[p] << " at " << p;
    }
  }
  EXPECT_EQ(int64_t(fact_pos.size()), s.pairs);
  EXPECT_EQ(tok[context], m.separator);
  for (int64_t p = 0; p <= context; ++p) EXPECT_EQ(tgt[p], kIgnoreIndex) << p;

  std::vector<int64_t> distances;
  std::set<int32_t> asked;
  for (int64_t q = 0; q < s.queries; ++q) {
    const int64_t p = context + 1 + 2 * q;
    EXPECT_EQ(tok[p], m.query);
    const int32_t key = tok[p + 1];
    EXPECT_TRUE(m.is_key(key));
    EXPECT_TRUE(asked.insert(key).second) << "key " << key << " queried twice";
    EXPECT_EQ(fact_pos.count(key), 1u);
    const int64_t fp = fact_pos[key];
    // Only the queried key predicts, and it predicts the fact's value.
    EXPECT_EQ(tgt[p], kIgnoreIndex);
    EXPECT_EQ(tgt[p + 1], m.fact_value(tok[fp]));
    distances.push_back(p + 1 - fp);
  }
  return distances;
}

}  // namespace

TEST(Tokenizer, ByteRoundTrip) {
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(char(i));
  all += "hello, wörld\n";
  const std::vector<int32_t> t = tsp::byte_tokenize(all);
  ASSERT_EQ(t.size(), all.size());
  for (int i = 0; i < 256; ++i) EXPECT_EQ(t[size_t(i)], i);
  for (int32_t x : t) EXPECT_TRUE(x >= 0 && x < 256);
  EXPECT_EQ(tsp::byte_detokenize(t), all);
  EXPECT_EQ(tsp::byte_detokenize({104, 256, 105, -1, 300}), "hi");
  EXPECT_TRUE(tsp::byte_tokenize("").empty());
}

TEST(Recall, DefaultSpecFitsByteVocabulary) {
  tsp::RecallTask task(1);
  EXPECT_EQ(task.vocab_needed(), 16 + 10 + 2 + 16 * 10 + tsp::RecallTask::kFillerTokens);
  EXPECT_LE(task.vocab_needed(), 256);
  EXPECT_DOUBLE_EQ(task.chance_accuracy(), 1.0 / 10);
  EXPECT_FALSE(task.describe().empty());
  const tsp::Batch b = task.next(2, 512);
  for (int32_t t : b.tokens) EXPECT_TRUE(t >= 0 && t < task.vocab_needed()) << t;
}

TEST(Recall, LayoutAndTargets) {
  for (const tsp::RecallSpec spec :
       {tsp::RecallSpec{}, tsp::RecallSpec{16, 8, 10, 4}, tsp::RecallSpec{5, 3, 5, 5}}) {
    tsp::RecallTask task(123, spec);
    for (int64_t seq_len : {tsp::RecallTask::min_seq_len(spec), int64_t{300}, int64_t{1024}}) {
      SCOPED_TRACE(seq_len);
      const tsp::Batch b = task.next(3, seq_len);
      ASSERT_EQ(b.batch, 3);
      ASSERT_EQ(b.seq_len, seq_len);
      ASSERT_EQ(int64_t(b.tokens.size()), 3 * seq_len);
      ASSERT_EQ(int64_t(b.targets.size()), 3 * seq_len);
      for (int64_t i = 0; i < 3; ++i) {
        check_recall_sequence(spec, b.tokens.data() + i * seq_len, b.targets.data() + i * seq_len, seq_len);
      }
      const int64_t n_targets =
          std::count_if(b.targets.begin(), b.targets.end(), [](int32_t t) { return t != kIgnoreIndex; });
      EXPECT_EQ(n_targets, 3 * spec.queries);
    }
  }
}

TEST(Recall, DeterministicAndResumable) {
  tsp::RecallTask a(42), b(42), other(43);
  std::vector<tsp::Batch> stream;
  for (int i = 0; i < 5; ++i) stream.push_back(a.next(2, 256));
  EXPECT_EQ(a.position(), 5);
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(same_batch(b.next(2, 256), stream[size_t(i)])) << i;
  EXPECT_FALSE(same_batch(other.next(2, 256), stream[0]));
  for (int i = 1; i < 5; ++i) EXPECT_FALSE(same_batch(stream[size_t(i)], stream[0]));
  // Resume from a checkpointed position.
  tsp::RecallTask resumed(42);
  resumed.seek(3);
  EXPECT_EQ(resumed.position(), 3);
  EXPECT_TRUE(same_batch(resumed.next(2, 256), stream[3]));
  EXPECT_TRUE(same_batch(resumed.next(2, 256), stream[4]));
  EXPECT_EQ(resumed.position(), 5);
  // Sequences within a batch differ.
  EXPECT_FALSE(
      std::equal(stream[0].tokens.begin(), stream[0].tokens.begin() + 256, stream[0].tokens.begin() + 256));
}

TEST(Recall, AnswersAreFarBack) {
  const tsp::RecallSpec spec;
  tsp::RecallTask task(7, spec);
  const int64_t seq_len = 2048;
  const tsp::Batch b = task.next(8, seq_len);
  const RecallMap m(spec);
  double mean_fact_pos = 0;
  for (int64_t i = 0; i < b.batch; ++i) {
    const std::vector<int64_t> d =
        check_recall_sequence(spec, b.tokens.data() + i * seq_len, b.targets.data() + i * seq_len, seq_len);
    EXPECT_GT(*std::max_element(d.begin(), d.end()), seq_len / 2) << "sequence " << i;
    for (int64_t p = 0; p < seq_len; ++p)
      if (m.is_fact(b.tokens[size_t(i * seq_len + p)])) mean_fact_pos += double(p);
  }
  // Facts spread uniformly over the context.
  const int64_t context = seq_len - 2 * spec.queries - 1;
  mean_fact_pos /= double(b.batch * spec.pairs);
  EXPECT_NEAR(mean_fact_pos, context / 2.0, context * 0.1);
}

TEST(Recall, HeldOutIsFixedAndDisjointFromTraining) {
  tsp::RecallTask task(5);
  const tsp::Batch h1 = task.held_out(4, 512);
  for (int i = 0; i < 20; ++i) EXPECT_FALSE(same_batch(task.next(4, 512), h1)) << i;
  EXPECT_TRUE(same_batch(task.held_out(4, 512), h1));
  // The held-out sequences do not depend on how many are requested.
  const tsp::Batch h2 = task.held_out(2, 512);
  EXPECT_TRUE(std::equal(h2.tokens.begin(), h2.tokens.end(), h1.tokens.begin()));
  EXPECT_NE(tsp::RecallTask(6).held_out(4, 512).tokens, h1.tokens);
}

TEST(Recall, RejectsBadSpecsAndShortSequences) {
  const tsp::RecallSpec spec;
  tsp::RecallTask task(1, spec);
  const int64_t min_len = tsp::RecallTask::min_seq_len(spec);
  EXPECT_EQ(min_len, 2 * 16 + 1 + 2 * 16);
  EXPECT_NO_THROW(task.next(1, min_len));
  const std::string msg = usage_error([&] { task.next(1, min_len - 1); });
  EXPECT_NE(msg.find(std::to_string(min_len)), std::string::npos) << msg;
  EXPECT_NE(usage_error([&] { task.held_out(1, 10); }), "");
  EXPECT_NE(usage_error([&] { task.next(0, 512); }), "");

  EXPECT_NE(usage_error([] { tsp::RecallTask(1, {16, 10, 16, 17}); }).find("queries"), std::string::npos);
  EXPECT_NE(usage_error([] { tsp::RecallTask(1, {8, 10, 16, 8}); }).find("num_keys"), std::string::npos);
  EXPECT_NE(usage_error([] { tsp::RecallTask(1, {16, 0, 16, 8}); }).find("num_values"), std::string::npos);
  // Not {64, 64, 0, 0}: g++ 12.2 with AVX-512 (-march=native) miscompiles a 4 x int64 aggregate of the form
  // {x, x, 0, 0} into {x, x, x, x}.
  EXPECT_NE(usage_error([] { tsp::RecallTask(1, {64, 64, 0, 1}); }).find("pairs"), std::string::npos);
}

TEST(Recall, TargetAccuracy) {
  const std::vector<int32_t> targets = {kIgnoreIndex, 5, kIgnoreIndex, 7, 9};
  EXPECT_DOUBLE_EQ(tsp::target_accuracy({0, 5, 1, 7, 1}, targets), 2.0 / 3);
  EXPECT_DOUBLE_EQ(tsp::target_accuracy({5, 5, 5, 7, 9}, targets), 1.0);
  EXPECT_DOUBLE_EQ(tsp::target_accuracy({1, 2}, {kIgnoreIndex, kIgnoreIndex}), 0.0);
  EXPECT_THROW(tsp::target_accuracy({1}, targets), tsp::Error);
}

TEST(TextData, WindowsAndNextByteTargets) {
  TempDir tmp;
  std::string text;
  std::mt19937 rng(3);
  for (int i = 0; i < 5000; ++i) text.push_back(char(rng() % 256));
  const std::string path = tmp.write("corpus.txt", text);
  tsp::TextData data(path, 11);
  EXPECT_EQ(data.vocab_needed(), 256);
  EXPECT_NE(data.describe().find(path), std::string::npos);
  const int64_t S = 64;
  const tsp::Batch b = data.next(4, S);
  ASSERT_EQ(int64_t(b.tokens.size()), 4 * S);
  const std::vector<int32_t> all = tsp::byte_tokenize(text);
  std::set<int64_t> starts;
  for (int64_t i = 0; i < 4; ++i) {
    const int32_t* tok = b.tokens.data() + i * S;
    const int32_t* tgt = b.targets.data() + i * S;
    // The window is a contiguous piece of the file; the targets are the same piece shifted by one.
    auto it = std::search(all.begin(), all.end(), tok, tok + S);
    ASSERT_NE(it, all.end());
    const int64_t start = it - all.begin();
    starts.insert(start);
    for (int64_t p = 0; p < S; ++p) EXPECT_EQ(tgt[p], all[size_t(start + p + 1)]);
  }
  EXPECT_GT(starts.size(), 1u);
}

TEST(TextData, DeterministicAndResumable) {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 3000; ++i) text += char('a' + (i * 7 + i / 13) % 26);
  const std::string path = tmp.write("corpus.txt", text);
  tsp::TextData a(path, 9), b(path, 9), c(path, 10);
  std::vector<tsp::Batch> stream;
  for (int i = 0; i < 4; ++i) stream.push_back(a.next(3, 100));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(same_batch(b.next(3, 100), stream[size_t(i)]));
  EXPECT_FALSE(same_batch(c.next(3, 100), stream[0]));
  tsp::TextData resumed(path, 9);
  resumed.seek(2);
  EXPECT_TRUE(same_batch(resumed.next(3, 100), stream[2]));
  EXPECT_EQ(resumed.position(), 3);
}

TEST(TextData, ShortFileRejected) {
  TempDir tmp;
  const std::string path = tmp.write("short.txt", std::string(100, 'x'));
  tsp::TextData data(path, 1);
  EXPECT_NO_THROW(data.next(2, 99));  // exactly seq_len + 1 bytes: one possible window
  const std::string msg = usage_error([&] { data.next(1, 100); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("100 bytes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("101"), std::string::npos) << msg;

  const std::string missing = (fs::temp_directory_path() / "tsp_no_such_corpus.txt").string();
  EXPECT_NE(usage_error([&] { tsp::TextData(missing, 1); }).find(missing), std::string::npos);
}

#include "train/data.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <numeric>
#include <random>

#include "core/check.h"
#include "data/seeded.h"
#include "kernels/cross_entropy.h"

namespace tsp {

namespace {

constexpr uint64_t kTrainDomain = 0x7472'6169'6eull;         // "train"
constexpr uint64_t kHeldOutDomain = 0x6865'6c64'6f75'74ull;  // "heldout"
constexpr uint64_t kSequenceDomain = 0x7365'7175'656eull;    // "sequen"

// The first k entries of a uniformly shuffled 0..n-1 (partial Fisher-Yates).
std::vector<int64_t> sample_distinct(std::mt19937_64& rng, int64_t n, int64_t k) {
  std::vector<int64_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  for (int64_t i = 0; i < k; ++i) std::swap(v[size_t(i)], v[size_t(i + uniform_below(rng, n - i))]);
  v.resize(size_t(k));
  return v;
}

}  // namespace

// ---- TextData ---------------------------------------------------------------------------------------------

Batch DataSource::validation_batch(int64_t, int64_t, int64_t) const {
  throw UsageError(fmt::format("the data ({}) has no validation split", describe()));
}

TextData::TextData(const std::string& path, uint64_t seed, const Tokenizer* tokenizer)
    : path_(path), seed_(seed) {
  std::ifstream in(path, std::ios::binary);
  TSP_REQUIRE(in.good(), "cannot open text data file '{}': {}", path, std::strerror(errno));
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  TSP_REQUIRE(!in.bad(), "cannot read text data file '{}'", path);
  bytes_ = int64_t(bytes.size());
  const ByteTokenizer bytes_only;
  const Tokenizer& tok = tokenizer ? *tokenizer : bytes_only;
  tokens_ = tok.encode(bytes);
  vocab_ = tok.vocab_size();
  tokenizer_ = tok.describe();
}

Batch TextData::next(int64_t batch, int64_t seq_len) {
  TSP_REQUIRE(batch > 0 && seq_len > 0, "text data: batch ({}) and seq_len ({}) must be positive", batch,
              seq_len);
  const int64_t n = int64_t(tokens_.size());
  TSP_REQUIRE(
      n >= seq_len + 1,
      "text data file '{}' has {} bytes, {} tokens; seq_len {} needs at least {} tokens (a window plus its "
      "next token)",
      path_, bytes_, n, seq_len, seq_len + 1);
  Batch out;
  out.batch = batch;
  out.seq_len = seq_len;
  out.tokens.resize(size_t(batch * seq_len));
  out.targets.resize(size_t(batch * seq_len));
  const uint64_t batch_seed = derive_seed(seed_, kTrainDomain, uint64_t(drawn_));
  for (int64_t b = 0; b < batch; ++b) {
    std::mt19937_64 rng(derive_seed(batch_seed, kSequenceDomain, uint64_t(b)));
    const int64_t start = uniform_below(rng, n - seq_len);  // windows [start, start + seq_len] inclusive
    std::copy_n(tokens_.begin() + start, seq_len, out.tokens.begin() + b * seq_len);
    std::copy_n(tokens_.begin() + start + 1, seq_len, out.targets.begin() + b * seq_len);
  }
  ++drawn_;
  return out;
}

std::string TextData::describe() const {
  return fmt::format("text file '{}' ({} bytes, {} tokens, {}, seed {})", path_, bytes_, tokens_.size(),
                     tokenizer_, seed_);
}

// ---- RecallTask -------------------------------------------------------------------------------------------

RecallTask::RecallTask(uint64_t seed, RecallSpec spec) : seed_(seed), spec_(spec) {
  TSP_REQUIRE(spec.num_keys > 0, "recall task: num_keys must be positive, got {}", spec.num_keys);
  TSP_REQUIRE(spec.num_values > 0, "recall task: num_values must be positive, got {}", spec.num_values);
  TSP_REQUIRE(spec.pairs > 0, "recall task: pairs must be positive, got {}", spec.pairs);
  TSP_REQUIRE(spec.pairs <= spec.num_keys,
              "recall task: pairs ({}) must be <= num_keys ({}): keys are distinct", spec.pairs,
              spec.num_keys);
  TSP_REQUIRE(spec.queries > 0 && spec.queries <= spec.pairs,
              "recall task: queries must be in [1, pairs = {}], got {}", spec.pairs, spec.queries);
  TSP_REQUIRE(vocab_needed() <= std::numeric_limits<int32_t>::max(), "recall task: vocabulary too large");
}

int64_t RecallTask::vocab_needed() const {
  return spec_.num_keys + spec_.num_values + 2 + spec_.num_keys * spec_.num_values + kFillerTokens;
}

int64_t RecallTask::min_seq_len(const RecallSpec& s) {
  // Facts, at least as many filler tokens as facts (so facts are scattered), the separator, the queries.
  return 2 * s.pairs + 1 + 2 * s.queries;
}

Batch RecallTask::next(int64_t batch, int64_t seq_len) {
  Batch out = make(derive_seed(seed_, kTrainDomain, uint64_t(drawn_)), batch, seq_len);
  ++drawn_;
  return out;
}

Batch RecallTask::held_out(int64_t batch, int64_t seq_len) const {
  return make(derive_seed(seed_, kHeldOutDomain, 0), batch, seq_len);
}

Batch RecallTask::make(uint64_t stream_seed, int64_t batch, int64_t seq_len) const {
  const RecallSpec& s = spec_;
  TSP_REQUIRE(batch > 0, "recall task: batch must be positive, got {}", batch);
  TSP_REQUIRE(seq_len >= min_seq_len(s),
              "recall task: seq_len {} is too short for {} pairs and {} queries; the minimum is {}", seq_len,
              s.pairs, s.queries, min_seq_len(s));
  const int32_t value0 = int32_t(s.num_keys);
  const int32_t query_token = int32_t(s.num_keys + s.num_values);
  const int32_t separator = query_token + 1;
  const int32_t fact0 = query_token + 2;
  const int32_t filler0 = fact0 + int32_t(s.num_keys * s.num_values);
  const int64_t context = seq_len - 2 * s.queries - 1;  // facts and filler; then the separator, then queries

  Batch out;
  out.batch = batch;
  out.seq_len = seq_len;
  out.tokens.resize(size_t(batch * seq_len));
  out.targets.assign(size_t(batch * seq_len), kernels::kIgnoreIndex);
  for (int64_t b = 0; b < batch; ++b) {
    std::mt19937_64 rng(derive_seed(stream_seed, kSequenceDomain, uint64_t(b)));
    int32_t* tok = out.tokens.data() + b * seq_len;
    int32_t* tgt = out.targets.data() + b * seq_len;

    const std::vector<int64_t> keys = sample_distinct(rng, s.num_keys, s.pairs);
    std::vector<int64_t> values(static_cast<size_t>(s.pairs));
    for (auto& v : values) v = uniform_below(rng, s.num_values);

    for (int64_t p = 0; p < context; ++p) tok[p] = filler0 + int32_t(uniform_below(rng, kFillerTokens));
    const std::vector<int64_t> places = sample_distinct(rng, context, s.pairs);
    for (int64_t i = 0; i < s.pairs; ++i)
      tok[places[size_t(i)]] = fact0 + int32_t(keys[size_t(i)] * s.num_values + values[size_t(i)]);
    tok[context] = separator;

    // Queries ask distinct facts in random order; only the queried key's position predicts (its value).
    const std::vector<int64_t> asked = sample_distinct(rng, s.pairs, s.queries);
    for (int64_t q = 0; q < s.queries; ++q) {
      const int64_t p = context + 1 + 2 * q;
      const size_t fact = size_t(asked[size_t(q)]);
      tok[p] = query_token;
      tok[p + 1] = int32_t(keys[fact]);
      tgt[p + 1] = value0 + int32_t(values[fact]);
    }
  }
  return out;
}

std::string RecallTask::describe() const {
  return fmt::format(
      "associative recall ({} keys, {} values, {} facts, {} queries per sequence, chance {:.4f}, seed {})",
      spec_.num_keys, spec_.num_values, spec_.pairs, spec_.queries, chance_accuracy(), seed_);
}

double target_accuracy(const std::vector<int32_t>& predictions, const std::vector<int32_t>& targets) {
  TSP_CHECK(predictions.size() == targets.size(), "target_accuracy: {} predictions for {} targets",
            predictions.size(), targets.size());
  int64_t counted = 0, correct = 0;
  for (size_t i = 0; i < targets.size(); ++i) {
    if (targets[i] == kernels::kIgnoreIndex) continue;
    ++counted;
    correct += predictions[i] == targets[i];
  }
  return counted == 0 ? 0.0 : double(correct) / double(counted);
}

}  // namespace tsp

// Training data: any text file (through a tokenizer, bytes by default), and the built-in long-context
// associative recall task; tokenized datasets (data/packed_dataset.h) implement the same interface. A Batch
// holds B sequences of S tokens and their next-token targets; positions with nothing to predict carry
// kIgnoreIndex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/byte_tokenizer.h"

namespace tsp {

struct Batch {
  int64_t batch = 0, seq_len = 0;
  std::vector<int32_t> tokens;   // [batch * seq_len]
  std::vector<int32_t> targets;  // [batch * seq_len]; kernels::kIgnoreIndex where nothing is predicted
};

class DataSource {
 public:
  virtual ~DataSource() = default;
  // The next training batch; deterministic given the source's seed and how many batches came before.
  virtual Batch next(int64_t batch, int64_t seq_len) = 0;
  // Where the stream is (batches drawn, or tokens consumed for a packed dataset): saved in checkpoints and
  // set on resume so the stream continues exactly.
  virtual int64_t position() const = 0;
  virtual void seek(int64_t position) = 0;
  virtual int64_t vocab_needed() const = 0;  // smallest vocab_size that covers every token
  virtual std::string describe() const = 0;

  // A held-out validation split, for sources that have one: how many batches of this shape it holds, and
  // batch `index` of them (always the same sequences).
  virtual int64_t validation_batches(int64_t /*batch*/, int64_t /*seq_len*/) const { return 0; }
  virtual Batch validation_batch(int64_t index, int64_t batch, int64_t seq_len) const;
};

// Random windows of a tokenized text file (bytes unless a tokenizer is given); target = next token.
class TextData : public DataSource {
 public:
  TextData(const std::string& path, uint64_t seed, const Tokenizer* tokenizer = nullptr);
  Batch next(int64_t batch, int64_t seq_len) override;
  int64_t position() const override { return drawn_; }
  void seek(int64_t batches_drawn) override { drawn_ = batches_drawn; }
  int64_t vocab_needed() const override { return vocab_; }
  std::string describe() const override;

 private:
  std::string path_, tokenizer_;
  int64_t bytes_ = 0, vocab_ = 256;
  std::vector<int32_t> tokens_;
  uint64_t seed_;
  int64_t drawn_ = 0;
};

// Long-context associative recall. Each sequence scatters `pairs` key→value facts (distinct keys, random
// values) through filler tokens, then ends with queries: a query marker and a key seen earlier, whose target
// is that key's value. Only the value after each queried key is a target, so the loss and the accuracy
// measure recall alone; with seq_len in the thousands, most answers sit thousands of tokens back, so a layout
// that cannot attend across the whole context cannot solve it. Chance accuracy is 1 / num_values.
//
// Each fact is ONE token, pair(k, v): a single attention lookup by content (the query's key against the
// facts' keys) answers a query. Two-token "k v" facts would also require an induction head (a previous-token
// head composed with a content lookup), which small models take tens of millions of tokens to form — far
// beyond what the CPU demo and tests can train on — while the fused form still tests exactly the long-range
// attention that distinguishes a correct layout.
//
// Token map (K = num_keys, V = num_values, F = kFillerTokens; the default spec needs 16 + 10 + 2 + 160 + 64 =
// 252 tokens, inside the byte-level vocabulary of 256):
//   [0, K)                      keys (as queried)
//   [K, K + V)                  values (the targets)
//   K + V                       QUERY marker
//   K + V + 1                   SEPARATOR (ends the context, starts the queries)
//   K + V + 2 + k·V + v         the fact pair(k, v), for k < K, v < V
//   [K + V + 2 + K·V, ... + F)  filler
// Sequence layout, C = seq_len - 2 * queries - 1:
//   [0, C)       `pairs` fact tokens at uniformly random distinct places; filler elsewhere
//   C            SEPARATOR
//   C + 1 + 2q   QUERY, then the key of query q (distinct keys from the facts, in random order)
// targets[i] is the value at each queried key's position, kIgnoreIndex elsewhere.
struct RecallSpec {
  int64_t num_keys = 16;    // key vocabulary
  int64_t num_values = 10;  // value vocabulary (chance = 1 / num_values)
  int64_t pairs = 16;       // key→value facts per sequence (<= num_keys: keys are distinct)
  int64_t queries = 16;     // queries per sequence (<= pairs)
};

class RecallTask : public DataSource {
 public:
  static constexpr int64_t kFillerTokens = 1;
  // Shortest seq_len for a spec: the facts, as much filler as facts, the separator and the queries.
  static int64_t min_seq_len(const RecallSpec& spec);

  RecallTask(uint64_t seed, RecallSpec spec = {});
  Batch next(int64_t batch, int64_t seq_len) override;
  int64_t position() const override { return drawn_; }
  void seek(int64_t batches_drawn) override { drawn_ = batches_drawn; }
  int64_t vocab_needed() const override;
  std::string describe() const override;

  // A fixed held-out set (drawn from a seed stream disjoint from training's).
  Batch held_out(int64_t batch, int64_t seq_len) const;
  double chance_accuracy() const { return 1.0 / double(spec_.num_values); }
  const RecallSpec& spec() const { return spec_; }

 private:
  Batch make(uint64_t stream_seed, int64_t batch, int64_t seq_len) const;
  uint64_t seed_;
  RecallSpec spec_;
  int64_t drawn_ = 0;
};

// Accuracy over target positions: predictions[i] == targets[i] where targets[i] != kIgnoreIndex.
double target_accuracy(const std::vector<int32_t>& predictions, const std::vector<int32_t>& targets);

}  // namespace tsp

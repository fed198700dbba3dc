#include "data/packed_dataset.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "data/seeded.h"

namespace tsp {

namespace {

constexpr uint64_t kValidationDomain = 0x76616c'6964ull;  // "valid"
constexpr uint64_t kEpochDomain = 0x6570'6f63'68ull;      // "epoch"

}  // namespace

PackedDataset::PackedDataset(const std::string& dir, uint64_t seed, double val_fraction)
    : data_(std::make_unique<TokenDataset>(dir)), seed_(seed), val_fraction_(val_fraction) {
  TSP_REQUIRE(val_fraction >= 0 && val_fraction < 1, "--val-fraction must be in [0, 1), got {}",
              val_fraction);
  const int64_t n = data_->documents();
  std::vector<char> held(size_t(n), 0);
  if (val_fraction > 0) {
    TSP_REQUIRE(n >= 2,
                "--val-fraction {} needs at least 2 documents to hold some out, but --dataset {} has {}",
                val_fraction, dir, n);
    const int64_t k = std::clamp<int64_t>(int64_t(std::llround(val_fraction * double(n))), 1, n - 1);
    std::vector<int64_t> all(static_cast<size_t>(n));
    std::iota(all.begin(), all.end(), 0);
    std::mt19937_64 rng(derive_seed(seed, kValidationDomain, 0));
    shuffle_in_place(all, rng);
    for (int64_t i = 0; i < k; ++i) held[size_t(all[size_t(i)])] = 1;
  }
  for (int64_t d = 0; d < n; ++d) {
    if (held[size_t(d)]) {
      val_starts_.push_back(val_tokens_);
      val_docs_.push_back(d);
      val_tokens_ += data_->doc_length(d);
    } else {
      train_docs_.push_back(d);
      epoch_tokens_ += data_->doc_length(d);
    }
  }
  val_starts_.push_back(val_tokens_);
}

const PackedDataset::Epoch& PackedDataset::epoch(int64_t e) const {
  for (auto& c : cache_)
    if (c.number == e) return c;
  Epoch& c = cache_[0].number < cache_[1].number ? cache_[0] : cache_[1];  // replace the older
  c.number = e;
  c.order = train_docs_;
  std::mt19937_64 rng(derive_seed(seed_, kEpochDomain, uint64_t(e)));
  shuffle_in_place(c.order, rng);
  c.starts.resize(c.order.size() + 1);
  c.starts[0] = 0;
  for (size_t i = 0; i < c.order.size(); ++i) c.starts[i + 1] = c.starts[i] + data_->doc_length(c.order[i]);
  return c;
}

void PackedDataset::read_stream(int64_t from, int64_t n, int32_t* out) const {
  while (n > 0) {
    const Epoch& ep = epoch(from / epoch_tokens_);
    const int64_t off = from % epoch_tokens_;
    const size_t k =
        size_t(std::upper_bound(ep.starts.begin(), ep.starts.end(), off) - ep.starts.begin()) - 1;
    const int64_t doc = ep.order[k], within = off - ep.starts[k];
    const int64_t m = std::min(n, data_->doc_length(doc) - within);
    data_->read(data_->doc_begin(doc) + within, m, out);
    out += m;
    from += m;
    n -= m;
  }
}

void PackedDataset::read_validation(int64_t from, int64_t n, int32_t* out) const {
  while (n > 0) {
    const size_t k =
        size_t(std::upper_bound(val_starts_.begin(), val_starts_.end(), from) - val_starts_.begin()) - 1;
    const int64_t doc = val_docs_[k], within = from - val_starts_[k];
    const int64_t m = std::min(n, data_->doc_length(doc) - within);
    data_->read(data_->doc_begin(doc) + within, m, out);
    out += m;
    from += m;
    n -= m;
  }
}

namespace {

// Sequence b of a batch from S + 1 tokens: inputs are the first S, targets the last S.
void fill_sequence(const std::vector<int32_t>& window, int64_t b, int64_t S, Batch& out) {
  std::copy_n(window.begin(), S, out.tokens.begin() + b * S);
  std::copy_n(window.begin() + 1, S, out.targets.begin() + b * S);
}

Batch empty_batch(int64_t batch, int64_t seq_len) {
  TSP_REQUIRE(batch > 0 && seq_len > 0, "dataset: batch ({}) and seq_len ({}) must be positive", batch,
              seq_len);
  Batch out;
  out.batch = batch;
  out.seq_len = seq_len;
  out.tokens.resize(size_t(batch * seq_len));
  out.targets.resize(size_t(batch * seq_len));
  return out;
}

}  // namespace

Batch PackedDataset::next(int64_t batch, int64_t seq_len) {
  Batch out = empty_batch(batch, seq_len);
  std::vector<int32_t> window(size_t(seq_len + 1));
  for (int64_t b = 0; b < batch; ++b) {
    read_stream(position_, seq_len + 1, window.data());
    fill_sequence(window, b, seq_len, out);
    position_ += seq_len;
  }
  return out;
}

void PackedDataset::seek(int64_t position) {
  TSP_REQUIRE(position >= 0, "dataset position {} must be >= 0", position);
  position_ = position;
}

int64_t PackedDataset::validation_batches(int64_t batch, int64_t seq_len) const {
  if (val_docs_.empty() || batch <= 0 || seq_len <= 0) return 0;
  return (val_tokens_ - 1) / seq_len / batch;
}

Batch PackedDataset::validation_batch(int64_t index, int64_t batch, int64_t seq_len) const {
  TSP_REQUIRE(index >= 0 && index < validation_batches(batch, seq_len),
              "validation batch {} of {} x {} tokens: the validation split ({} tokens) holds {}", index,
              batch, seq_len, val_tokens_, validation_batches(batch, seq_len));
  Batch out = empty_batch(batch, seq_len);
  std::vector<int32_t> window(size_t(seq_len + 1));
  for (int64_t b = 0; b < batch; ++b) {
    read_validation((index * batch + b) * seq_len, seq_len + 1, window.data());
    fill_sequence(window, b, seq_len, out);
  }
  return out;
}

std::string PackedDataset::describe() const {
  std::string s =
      fmt::format("dataset {} ({} documents, {} tokens, {}, {}; packed, shuffled per epoch by seed {}",
                  data_->dir(), data_->documents(), data_->tokens(), data_->manifest().value("dtype", "?"),
                  data_->manifest().value("tokenizer", fmt::format("vocab {}", data_->vocab_size())), seed_);
  if (!val_docs_.empty())
    s += fmt::format("; validation {} documents, {} tokens (--val-fraction {})", val_docs_.size(),
                     val_tokens_, val_fraction_);
  return s + ")";
}

}  // namespace tsp

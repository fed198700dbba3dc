// Training batches from a tokenized dataset (data/token_dataset.h): documents packed back to back into
// sequences (a document may span sequences; EOS marks its end), in an order shuffled per epoch by the seed.
//
// The training stream is the infinite concatenation of epochs; epoch e lists the training documents in the
// permutation drawn from (seed, e). A sequence of S tokens takes the next S + 1 stream tokens (inputs and
// their next-token targets), and the stream advances by S, so no token is lost as a target. The position is
// one number, the stream offset in tokens: resuming from it continues with exactly the tokens an
// uninterrupted run would have seen, whatever sequence lengths came before.
//
// With val_fraction > 0, that fraction of the documents (at least one; drawn by the seed) is held out; the
// validation batches pack them in index order, so every evaluation sees the same sequences.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/token_dataset.h"
#include "train/data.h"

namespace tsp {

class PackedDataset : public DataSource {
 public:
  PackedDataset(const std::string& dir, uint64_t seed, double val_fraction = 0.0);

  Batch next(int64_t batch, int64_t seq_len) override;
  int64_t position() const override { return position_; }
  void seek(int64_t position) override;
  int64_t vocab_needed() const override { return data_->vocab_size(); }
  std::string describe() const override;
  int64_t validation_batches(int64_t batch, int64_t seq_len) const override;
  Batch validation_batch(int64_t index, int64_t batch, int64_t seq_len) const override;

  const TokenDataset& dataset() const { return *data_; }
  int64_t train_tokens() const { return epoch_tokens_; }
  int64_t validation_tokens() const { return val_tokens_; }
  int64_t validation_documents() const { return int64_t(val_docs_.size()); }

 private:
  struct Epoch {
    int64_t number = -1;
    std::vector<int64_t> order;   // training documents in this epoch's order
    std::vector<int64_t> starts;  // stream offset (within the epoch) of each, and the epoch length last
  };
  const Epoch& epoch(int64_t e) const;
  // Stream tokens [from, from + n) into out.
  void read_stream(int64_t from, int64_t n, int32_t* out) const;
  void read_validation(int64_t from, int64_t n, int32_t* out) const;

  std::unique_ptr<TokenDataset> data_;
  uint64_t seed_;
  double val_fraction_;
  std::vector<int64_t> train_docs_, val_docs_, val_starts_;
  int64_t epoch_tokens_ = 0, val_tokens_ = 0;
  int64_t position_ = 0;
  mutable Epoch cache_[2];  // the two most recent epochs (a sequence may straddle an epoch boundary)
};

}  // namespace tsp

#include "train/train_data.h"

#include "core/check.h"
#include "data/packed_dataset.h"
#include "model/checkpoint.h"

namespace tsp {

TrainData make_train_data(const TrainOptions& o) {
  TrainData d;
  TSP_REQUIRE(o.data.empty() || o.dataset.empty(), "--data and --dataset exclude each other (got both)");
  if (!o.dataset.empty()) {
    auto packed = std::make_unique<PackedDataset>(o.dataset, o.seed + 1, o.val_fraction);
    const std::string dir = o.tokenizer.empty() ? packed->dataset().tokenizer_dir() : o.tokenizer;
    if (!dir.empty()) {
      d.tokenizer = load_tokenizer(dir);
      TSP_REQUIRE(d.tokenizer->vocab_size() == packed->dataset().vocab_size(),
                  "--tokenizer {} has {} tokens, but --dataset {} was written with a tokenizer of {}", dir,
                  d.tokenizer->vocab_size(), o.dataset, packed->dataset().vocab_size());
    }
    d.source = std::move(packed);
    return d;
  }
  TSP_REQUIRE(o.val_fraction == 0,
              "--val-fraction needs --dataset (a tokenized dataset to hold documents out of)");
  if (!o.data.empty()) {
    if (!o.tokenizer.empty()) {
      d.tokenizer = load_tokenizer(o.tokenizer);
    } else if (!o.resume.empty()) {
      const std::string ck = resolve_checkpoint_dir(o.resume);
      if (has_tokenizer(ck)) d.tokenizer = load_tokenizer(ck);
    }
    d.source = std::make_unique<TextData>(o.data, o.seed + 1, d.tokenizer.get());
    return d;
  }
  TSP_REQUIRE(o.tokenizer.empty(),
              "--tokenizer needs --data FILE (the recall task is written in its own tokens)");
  auto r = std::make_unique<RecallTask>(o.seed + 1, o.recall);
  d.recall = r.get();
  d.source = std::move(r);
  return d;
}

void save_tokenizer_with_checkpoint(const TrainData& data, const std::string& checkpoint_dir) {
  if (data.tokenizer) copy_tokenizer_files(*data.tokenizer, checkpoint_dir);
}

}  // namespace tsp

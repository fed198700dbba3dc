// What `tsp train` trains on and with which tokenizer: the built-in recall task, a text file (--data, through
// --tokenizer DIR, else the resumed checkpoint's tokenizer, else bytes) or a tokenized dataset (--dataset,
// with the tokenizer it was written with). The tokenizer, when there is one, is copied into every checkpoint
// so that generate and eval find it there.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/trainer.h"

namespace tsp {

struct TrainData {
  std::unique_ptr<DataSource> source;
  RecallTask* recall = nullptr;  // the built-in task, when that is the source
  std::unique_ptr<Tokenizer>
      tokenizer;  // the text's tokenizer (null for the recall task and datasets without one)
};

TrainData make_train_data(const TrainOptions& o);

// Copies the tokenizer's files into a checkpoint directory (no-op without a tokenizer that has files).
void save_tokenizer_with_checkpoint(const TrainData& data, const std::string& checkpoint_dir);

}  // namespace tsp

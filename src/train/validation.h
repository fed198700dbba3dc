// The validation loss of a data source's held-out split: the mean next-token loss over its first
// `max_batches` batches (forward passes only; the same sequences every time).
#pragma once

#include <algorithm>
#include <cstdint>

#include "model/transformer.h"
#include "train/data.h"

namespace tsp {

struct ValidationLoss {
  double loss = 0;
  int64_t tokens = 0;  // predicted tokens it averages over
};

template <class T>
ValidationLoss validation_loss(Transformer<T>& model, const DataSource& data, int64_t batch, int64_t seq_len,
                               int64_t max_batches) {
  ValidationLoss v;
  const int64_t n = std::min(max_batches, data.validation_batches(batch, seq_len));
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    const Batch b = data.validation_batch(i, batch, seq_len);
    const StepResult r = model.forward(b.tokens.data(), b.targets.data(), batch, seq_len);
    sum += r.loss * double(r.targets);
    v.tokens += r.targets;
  }
  v.loss = v.tokens ? sum / double(v.tokens) : 0.0;
  return v;
}

}  // namespace tsp

// The training loop: one optimizer step per batch, one log line per step (rank 0), periodic checkpoints,
// exact resume, and a final summary (with held-out recall accuracy on the built-in task).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "comm/communicator.h"
#include "model/config.h"
#include "parallel/registry.h"
#include "train/data.h"

namespace tsp {

struct TrainOptions {
  ModelConfig model;
  std::string strategy = "single";
  std::string dtype = "float32";  // float32 | float64
  // The defaults are the demo's job: the recall task at 2048 tokens, reached by a sequence-length warm-up.
  int64_t seq_len = 2048;
  int64_t batch = 1;
  int64_t steps = 1000;
  // Sequence-length warm-up: over the first seq_len_warmup steps the length grows geometrically from
  // seq_len_start to seq_len, with the batch scaled so that tokens per step stay batch * seq_len. -1 (the
  // default): 70 % of --steps (700 of the default 1000), so that a shorter run still reaches seq_len, and off
  // when seq_len <= seq_len_start; an explicit value must be below --steps.
  int64_t seq_len_warmup = -1;
  int64_t seq_len_start = 128;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t warmup = 20;
  double weight_decay = 0.1;
  double grad_clip = 1.0;
  uint64_t seed = 1234;
  std::string data;            // text file; empty = the built-in recall task
  RecallSpec recall;           // shape of the built-in recall task
  std::string checkpoint_dir;  // empty = no checkpoints
  int64_t save_every = 0;      // 0 = only at the end (when checkpoint_dir is set)
  std::string resume;          // checkpoint directory to resume from
  int64_t eval_batches = 16;   // held-out batches for the final recall accuracy (recall task only)
  int64_t eval_seq_len = 0;    // sequence length of those batches (0: seq_len)
  StrategyOptions layout;      // mesh shape, data parallelism, tsp options
  std::string trace;           // Chrome-trace output path (several ranks: NAME.rank<r>.json, core/trace.h)
  bool json = false;           // step lines to stderr, one JSON document on stdout
  bool progress = false;       // draw the progress bar on rank 0 (the CLI decides: train/progress.h)
  int64_t log_every = 1;       // a step line every N steps (and always the first and the last)
};

// The warm-up length a run uses: seq_len_warmup, or when it is -1 70 % of the steps (0 for a 1-step run, or
// when seq_len is not above seq_len_start).
int64_t effective_seq_len_warmup(const TrainOptions& o);

// Runs the whole job on `world`'s ranks; returns the summary (also printed by rank 0).
nlohmann::json run_training(const TrainOptions& opts, Communicator& world);

}  // namespace tsp

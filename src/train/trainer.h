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
  std::string dataset;         // tokenized dataset directory (tsp tokenize --output); excludes data
  std::string tokenizer;       // tokenizer directory for --data (copied into checkpoints)
  double val_fraction = 0;     // documents of the dataset held out for the validation loss
  int64_t eval_every = 0;      // validation loss every N steps (0: at the end only), when there is a split
  RecallSpec recall;           // shape of the built-in recall task
  std::string checkpoint_dir;  // empty = no checkpoints
  int64_t save_every = 0;      // 0 = only at the end (when checkpoint_dir is set)
  std::string resume;  // "auto" (newest complete checkpoint of checkpoint_dir) or a checkpoint directory
  int64_t eval_batches = 16;  // held-out batches: final recall accuracy, or the dataset's validation loss
  int64_t eval_seq_len = 0;   // sequence length of those batches (0: seq_len)
  StrategyOptions layout;     // mesh shape, data parallelism, tsp options
  std::string trace;          // Chrome-trace output path (per rank: suffix .rank<N>.json)
  bool json = false;          // step lines to stderr, one JSON document on stdout
  bool progress = false;      // draw the progress bar on rank 0 (the CLI decides: train/progress.h)
  int64_t log_every = 1;      // a step line every N steps (and always the first and the last)
  // Checkpoint files above this size are split into HF shards with an index (HF size strings: "5GB").
  std::string max_shard_size = "5GB";
  std::string save_dtype;  // model.safetensors' format (--save-dtype); "" = the run's dtype

  // Reliability (docs/reliability.md): checkpoint retention and overwriting, where the run starts, the
  // communication watchdog, non-finite steps.
  int64_t keep_checkpoints = 0;        // keep the K newest step directories (0: all)
  bool overwrite = false;              // train into a --checkpoint-dir that already holds checkpoints
  std::string init_from;               // start from these weights with a fresh optimizer at step 0
  bool model_from_checkpoint = false;  // take the model config from --resume / --init-from's checkpoint
  double comm_timeout = 600;   // seconds a communication call may block before the job is aborted (0: off)
  int64_t skip_nonfinite = 0;  // non-finite steps to skip before stopping
};

// The warm-up length a run uses: seq_len_warmup, or when it is -1 70 % of the steps (0 for a 1-step run, or
// when seq_len is not above seq_len_start).
int64_t effective_seq_len_warmup(const TrainOptions& o);

// Runs the whole job on `world`'s ranks; returns the summary with the per-step "log" (what rank 0 prints
// under --json). Its "exit_status" is the status the job should exit with (0; 3 after a non-finite step;
// 128 + N after signal N).
nlohmann::json run_training(const TrainOptions& opts, Communicator& world);

}  // namespace tsp

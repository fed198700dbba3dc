// Checkpoints in the Hugging Face layout: a directory with config.json and model.safetensors (HF tensor
// names), loadable by transformers' LlamaForCausalLM. Training checkpoints add optimizer.safetensors (AdamW
// moments under "exp_avg.<name>" / "exp_avg_sq.<name>", full-size like the weights) and trainer_state.json
// (step, data position, seed), so a run resumes exactly. Tensors are always stored whole (unsharded), so a
// checkpoint written by any layout at any rank count loads into any other.
//
// Saving is collective over the strategy's communicator: every rank sends its shards to rank 0, which writes.
// The directory is written under a temporary name and renamed into place, so a checkpoint directory either
// exists complete or not at all.
#pragma once

#include <cstdint>
#include <string>

#include "comm/communicator.h"
#include "model/params.h"
#include "train/optimizer.h"

namespace tsp {

struct TrainState {
  int64_t step = 0;           // optimizer steps taken
  int64_t data_position = 0;  // batches drawn from the data source
  uint64_t seed = 0;
};

template <class T>
void save_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer,
                     const TrainState* state, Communicator* comm);

// Loads the weights (and, when optimizer/state are given, the training state: a checkpoint without them is
// an error naming the missing file). Errors name the file, the tensor and the problem.
template <class T>
void load_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer, TrainState* state);

// config.json of a checkpoint directory.
ModelConfig checkpoint_config(const std::string& dir);

// `dir` itself if it holds config.json, else the step directory named by dir/latest (written by the trainer).
std::string resolve_checkpoint_dir(const std::string& dir);

}  // namespace tsp

// Checkpoints in the Hugging Face layout: a directory with config.json and the weights under HF tensor names,
// loadable by transformers' LlamaForCausalLM: model.safetensors, or model-0000k-of-0000n.safetensors shards
// with model.safetensors.index.json above the maximum shard size (5GB by default, as save_pretrained).
// Training checkpoints add optimizer.safetensors (AdamW moments under "exp_avg.<name>" / "exp_avg_sq.<name>",
// full-size like the weights, sharded the same way) and trainer_state.json (train/train_state.h), so a
// run resumes exactly. The weights may be saved narrower than the run computes (--save-dtype bf16: the HF
// BF16 model.safetensors users publish); a training checkpoint then also keeps the exact weights, in the
// run's type, as "master.<name>" in optimizer.safetensors, and resuming reads those. Tensors are stored
// whole, so a checkpoint written by any layout at any rank count loads into any other.
//
// Loading reads in place (model/checkpoint_io.h): every rank maps the files and copies only its own blocks,
// converting BF16/F16/F32/F64 to the run's type. Saving is collective over the strategy's communicator and
// streams block by block to rank 0, which never holds more than two chunk buffers besides its own shard.
// The directory is written under a temporary name and renamed into place, so a checkpoint directory either
// exists complete or not at all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "comm/communicator.h"
#include "model/params.h"
#include "model/safetensors_index.h"
#include "train/optimizer.h"
#include "train/train_state.h"

namespace tsp {

struct CheckpointWriteOptions {
  int64_t max_shard_bytes = kDefaultMaxShardBytes;  // per safetensors file (--max-shard-size)
  int64_t chunk_bytes = 16 << 20;                   // rank 0's two receive buffers while saving
  // model.safetensors' format (--save-dtype); unset: the run's own (F32 for float, F64 for double runs).
  std::optional<DType> weight_dtype;
};

// "bf16"/"bfloat16", "fp16"/"float16", "fp32"/"float32", "fp64"/"float64" (--save-dtype); UsageError naming
// the value and the choices otherwise.
DType parse_save_dtype(const std::string& name);

template <class T>
void save_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer,
                     const TrainState* state, Communicator* comm, const CheckpointWriteOptions& opts = {});

// What this rank read while loading.
struct CheckpointReadStats {
  ReadStats model, optimizer;
  uint64_t model_file_bytes = 0, optimizer_file_bytes = 0;  // sizes of the sets' files
};

// Loads the weights (and, when optimizer/state are given, the training state: a checkpoint without them is
// an error naming the missing file). Every file is validated before anything is read: headers, shapes, and
// the dtype of every weight against config.json's torch_dtype. Errors name the file, the tensor and the
// problem. Not collective.
template <class T>
CheckpointReadStats load_checkpoint(const std::string& dir, ModelParams<T>& params, AdamW<T>* optimizer,
                                    TrainState* state);

// config.json of a checkpoint directory.
ModelConfig checkpoint_config(const std::string& dir);

// `dir` itself if it holds config.json, else the step directory named by dir/latest (written by the trainer).
std::string resolve_checkpoint_dir(const std::string& dir);

}  // namespace tsp

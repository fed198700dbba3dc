// Where a run starts: --resume auto (the newest complete checkpoint of --checkpoint-dir, or step 0 when it
// has none), --resume DIR (that checkpoint, refused when incomplete or corrupt), or --init-from DIR (the
// weights of any checkpoint, HF directories included, with a fresh optimizer at step 0); and which data it
// trains on, so that a resume cannot silently switch data (issue 10, item 6).
#pragma once

#include <string>

#include "comm/communicator.h"
#include "train/checkpoint_manager.h"
#include "train/train_state.h"
#include "train/trainer.h"

namespace tsp {

struct ResumePoint {
  std::string dir;  // the verified checkpoint directory; empty: start at step 0
  TrainState state;
};

// Collective over world. `manager` may be null (no --checkpoint-dir); --resume auto then is an error.
ResumePoint find_resume_point(const std::string& resume, CheckpointManager* manager, Communicator& world);

// The data source of this run as recorded in trainer_state.json (see text_data_source).
nlohmann::json data_source_json(const std::string& data, const RecallSpec& recall);

// On resume: the --data file to train on (o.data, or the checkpoint's own file when --data is not given).
// Refuses (UsageError) data other than the checkpoint's: another file or file content, the recall task
// instead of a file or the other way round, or another recall task shape.
std::string data_for_resume(const TrainOptions& o, const TrainState& state, const std::string& checkpoint,
                            bool lead);

}  // namespace tsp

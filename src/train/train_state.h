// trainer_state.json: what a checkpoint needs beyond the tensors for a run to resume exactly (the step, the
// position in the data stream, the seed, the optimizer's step count, skipped non-finite steps) and what the
// run was trained on, so that a resume cannot silently switch data.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

namespace tsp {

struct TrainState {
  int64_t step = 0;           // optimizer steps taken (skipped non-finite steps included)
  int64_t data_position = 0;  // batches drawn from the data source
  uint64_t seed = 0;
  int64_t optimizer_step = 0;     // AdamW's t (steps that updated the weights)
  int64_t skipped_nonfinite = 0;  // steps skipped by --skip-nonfinite so far
  // The data source (data_source_json); null in checkpoints written before it was recorded.
  nlohmann::json data = nullptr;
  // --matmul-precision auto: the product paths chosen (kernels::product_paths_json()), restored on resume so
  // that the resumed run takes the same paths; null otherwise.
  nlohmann::json product_paths = nullptr;
};

std::string train_state_json(const TrainState& s);
// Parses trainer_state.json text; errors (UsageError) name `where` and the field.
TrainState parse_train_state(const std::string& text, const std::string& where);
TrainState read_train_state(const std::string& path);
// Writes trainer_state.json (UsageError naming the file on failure).
void write_train_state(const std::string& path, const TrainState& s);

// {"kind": "text", "path": absolute path, "bytes": size, "crc32": checksum} for a text file, or
// {"kind": "recall", "keys": .., "values": .., "pairs": .., "queries": ..} for the built-in task.
nlohmann::json text_data_source(const std::string& path);

}  // namespace tsp

// trainer_state.json of a checkpoint on hostile input.
#include "core/check.h"
#include "fuzz/fuzz_input.h"
#include "train/train_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tsp::fuzz::scratch_file(data, size, ".trainer_state.json");
  try {
    tsp::TrainState s = tsp::read_train_state(path);
    // What was read writes back and reads again to the same state.
    tsp::TrainState t = tsp::parse_train_state(tsp::train_state_json(s), "round trip");
    if (t.step != s.step || t.data_position != s.data_position || t.seed != s.seed ||
        t.optimizer_step != s.optimizer_step || t.skipped_nonfinite != s.skipped_nonfinite ||
        t.data != s.data)
      __builtin_trap();
  } catch (const tsp::Error&) {
  }
  return 0;
}

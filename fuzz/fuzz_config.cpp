// config.json (HF Llama format) on hostile input: parse, convert, validate.
#include "core/check.h"
#include "fuzz/fuzz_input.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tsp::fuzz::scratch_file(data, size, ".config.json");
  try {
    tsp::ModelConfig c = tsp::load_config(path);
    c.validate();
    (void)c.parameter_count();
  } catch (const tsp::Error&) {
  }
  return 0;
}

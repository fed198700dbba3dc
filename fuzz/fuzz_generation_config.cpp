// generation_config.json of a model directory (its eos_token_id: the stop tokens of generate) on hostile
// input.
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "infer/generation_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace fs = std::filesystem;
  static const fs::path dir =
      fs::temp_directory_path() / ("tsp-fuzz-genconfig-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "generation_config.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  try {
    for (int32_t id : tsp::eos_token_ids(dir.string()))
      if (id < 0) __builtin_trap();
  } catch (const tsp::Error&) {
  }
  return 0;
}

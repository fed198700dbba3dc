// The safetensors reader on hostile files: header length, JSON header, offsets, dtypes, shapes, and the
// body (every tensor is read, whole and as a block, converted to float).
#include <algorithm>
#include <vector>

#include "core/check.h"
#include "fuzz/fuzz_input.h"
#include "model/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = tsp::fuzz::scratch_file(data, size, ".safetensors");
  try {
    tsp::SafetensorsReader r(path);
    for (const std::string& name : r.names()) {
      const tsp::TensorInfo& t = r.info(name);
      // The header was validated against the file size: a tensor cannot be larger than the input.
      if (t.end - t.begin > size) __builtin_trap();
      std::vector<float> out(size_t(t.numel()));
      r.read(name, t.shape, out.data());
      if ((t.shape.size() == 1 || t.shape.size() == 2) && t.numel() > 0) {
        const int64_t rows = t.shape.size() == 2 ? t.shape[0] : 1, cols = t.shape.back();
        const int64_t r0 = rows / 2, nr = rows - r0, c0 = cols / 3, nc = cols - c0;
        std::vector<float> blk(size_t(nr * nc));
        r.read_block(name, t.shape, r0, nr, c0, nc, blk.data());
      }
    }
  } catch (const tsp::Error&) {
  }
  return 0;
}

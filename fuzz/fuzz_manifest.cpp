// The checkpoint manifest on hostile input: paths must stay inside the checkpoint, checksums must parse.
#include <algorithm>

#include "core/check.h"
#include "train/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const tsp::Manifest m =
        tsp::parse_manifest(std::string(reinterpret_cast<const char*>(data), size), "fuzz");
    for (const auto& f : m.files) {
      if (f.path.empty() || f.path[0] == '/') __builtin_trap();
      for (size_t p = 0; p <= f.path.size();) {  // no ".." component
        const size_t e = std::min(f.path.find('/', p), f.path.size());
        if (f.path.compare(p, e - p, "..") == 0 && e - p == 2) __builtin_trap();
        p = e + 1;
      }
    }
    const tsp::Manifest again = tsp::parse_manifest(tsp::manifest_json(m), "round trip");
    if (again.files.size() != m.files.size() || again.step != m.step) __builtin_trap();
  } catch (const tsp::Error&) {
  }
  return 0;
}

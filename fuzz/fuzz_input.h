// Helpers for the fuzz targets: the readers under test take file paths, so each input is written to one
// scratch file per process; and the verdict every target enforces: an input either parses or is rejected
// with tsp::Error (a clear message). Any other exception escapes LLVMFuzzerTestOneInput and is a finding,
// like a crash, a hang or an allocation far larger than the input (libFuzzer's -rss_limit_mb / -timeout).
#pragma once

#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <string>

namespace tsp::fuzz {

// Writes `size` bytes to `path` (aborting on failure: the harness, not the input, is broken then).
inline void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
}

inline std::string scratch_file(const uint8_t* data, size_t size, const char* suffix) {
  static const std::string path = "/tmp/tsp-fuzz-" + std::to_string(::getpid()) + suffix;
  write_file(path, data, size);
  return path;
}

}  // namespace tsp::fuzz

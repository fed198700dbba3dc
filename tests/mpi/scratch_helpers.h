// Scratch directories shared by the ranks of a multi-rank test, and whole-file reads to compare outputs.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "comm/communicator.h"

namespace tsp {

// One directory for the job, /tmp/<prefix>_<name>_<pid of rank 0> (rank 0 creates it; every rank gets the
// same path).
inline std::filesystem::path scratch_dir(Communicator& world, const std::string& prefix,
                                         const std::string& name) {
  int64_t id = int64_t(::getpid());
  world.broadcast("test.dir", &id, 1, 0);
  std::filesystem::path d =
      std::filesystem::temp_directory_path() / fmt::format("{}_{}_{}", prefix, name, id);
  if (world.rank() == 0) std::filesystem::create_directories(d);
  world.barrier();
  return d;
}

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

}  // namespace tsp

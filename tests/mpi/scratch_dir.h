// A scratch directory shared by every rank of a multi-rank test: rank 0 picks the name from its pid and
// creates it, every rank gets the same path.
#pragma once

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "comm/communicator.h"

namespace tsp::test {

inline std::filesystem::path scratch_dir(Communicator& world, const std::string& name) {
  int64_t id = int64_t(::getpid());
  world.broadcast("test.dir", &id, 1, 0);
  std::filesystem::path d = std::filesystem::temp_directory_path() / fmt::format("tsp_{}_{}", name, id);
  if (world.rank() == 0) std::filesystem::create_directories(d);
  world.barrier();
  return d;
}

}  // namespace tsp::test

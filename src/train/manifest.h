// manifest.json of a checkpoint step directory: every file with its size and CRC-32, written last (before
// the directory is renamed into place) and verified when the checkpoint is loaded
// (train/checkpoint_manager.h). Parsing is strict: the file may be damaged or hostile (fuzz/).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tsp {

constexpr const char* kManifestFile = "manifest.json";

struct ManifestEntry {
  std::string path;  // relative to the checkpoint directory, '/'-separated, no "..", no leading '/'
  uint64_t size = 0;
  uint32_t crc32 = 0;
};

struct Manifest {
  int64_t step = 0;
  std::vector<ManifestEntry> files;
};

std::string manifest_json(const Manifest& m);
// Parses manifest.json text; errors (UsageError) name `where` and the problem.
Manifest parse_manifest(const std::string& text, const std::string& where);

// "step-000100" (at least six digits); parse_step_name accepts exactly that form.
std::string step_dir_name(int64_t step);
bool parse_step_name(const std::string& name, int64_t* step);

}  // namespace tsp

// The checkpoint manager (after torchtitan's): it owns the checkpoint directory of a run — step directories,
// `latest`, retention, atomic publication and the manifest — around the format writer (model/checkpoint.h),
// which writes one directory of files and knows nothing of the rest.
//
// DIR/step-000100/ is written as DIR/.step-000100.partial/, then manifest.json (every file's size and CRC-32)
// is added and fsynced, the directory is renamed into place, and only then is DIR/latest replaced
// atomically (write + fsync + rename). --keep-checkpoints K prunes the oldest step directories only after
// that. A process killed at any point therefore leaves the previous checkpoint loadable, and the new one
// either complete (with its manifest) or invisible (a .partial directory, removed by the next run).
//
// Every function taking a Communicator is collective over it: rank 0 looks at the file system, the others
// follow, so a problem is one UsageError, the same on every rank.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "train/manifest.h"

namespace tsp {

// What is wrong with checkpoint directory `dir` ("" when nothing): its manifest is missing (when
// `require_manifest`; an HF directory has none and passes otherwise) or unreadable, or a listed file is
// missing, has another size or another checksum. The message names the file and the problem. Each rank of
// `comm` (may be null: this process alone) checksums a share of the files.
std::string checkpoint_problem(const std::string& dir, Communicator* comm, bool require_manifest);

class CheckpointManager {
 public:
  // Checks --checkpoint-dir before any training step: it is a directory (or can be created) and is writable.
  // Stale .partial directories of an interrupted save are removed.
  CheckpointManager(std::string dir, int64_t keep, bool overwrite, Communicator& world);

  const std::string& dir() const { return dir_; }
  // The newest step directory whose manifest verifies ("" when none); newer incomplete or corrupt ones are
  // named in a warning and skipped.
  std::string newest_complete();
  // Refuses to train into a directory that already holds checkpoints, unless resuming (resumed_step >= 0)
  // or --overwrite; refuses complete checkpoints newer than the resumed step unless --overwrite. With
  // --overwrite the checkpoints in the way (and damaged ones --resume auto skipped) are deleted once this
  // run's first checkpoint is complete.
  void admit(int64_t resumed_step);
  // Writes the checkpoint of `step`: write_files(directory) must write every file of it (collective over
  // the ranks that take part; the manager synchronises the world before and after). Returns its directory.
  std::string save(int64_t step, const std::function<void(const std::string&)>& write_files);

 private:
  std::string dir_;
  int64_t keep_;
  bool overwrite_;
  Communicator& world_;
  std::vector<int64_t> existing_;   // step directories present at start (step-N and the old step_N)
  std::vector<int64_t> damaged_;    // skipped by newest_complete()
  std::vector<std::string> stale_;  // to delete after the first save (--overwrite, damaged ones)
};

}  // namespace tsp

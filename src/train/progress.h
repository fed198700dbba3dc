// The training progress bar: drawn only on a real interactive terminal, and erased before each step line so
// that the two never interleave.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace tsp {

// Whether rank 0 may draw the bar (`mode`: "auto", "always" or "never"). "auto" draws it only when stdout is
// a terminal, TERM is set and not "dumb", and the process was not started by an MPI launcher: Open MPI gives
// every rank a pseudo-terminal even when mpirun's own output goes to a file, so under mpirun (or srun) the
// bar's escape codes would land in redirected logs. UsageError for another mode.
bool progress_bar_wanted(const std::string& mode);
// The launcher's name when the process runs under one ("Open MPI", "MPICH/Hydra", "Slurm"), else "".
std::string mpi_launcher();

class ProgressBar {
 public:
  ProgressBar(bool on, std::FILE* out, int64_t first, int64_t last)
      : on_(on), out_(out), first_(first), last_(last) {}
  // Erases the bar (call before printing anything else on the same stream).
  void clear();
  void draw(int64_t step, double sec_per_step);

 private:
  bool on_, drawn_ = false;
  std::FILE* out_;
  int64_t first_, last_;
};

}  // namespace tsp

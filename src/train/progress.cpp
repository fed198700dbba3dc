#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "core/check.h"

namespace tsp {

// Variables the launchers set for each process they start (not PMIX_RANK: Open MPI sets that after MPI_Init
// in a singleton run too).
std::string mpi_launcher() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE")) return "Open MPI";
  if (std::getenv("PMI_RANK") || std::getenv("PMI_SIZE")) return "MPICH/Hydra";
  if (std::getenv("SLURM_PROCID") && std::getenv("SLURM_STEP_ID")) return "Slurm";
  return "";
}

bool progress_bar_wanted(const std::string& mode) {
  TSP_REQUIRE(mode == "auto" || mode == "always" || mode == "never",
              "--progress '{}' is not a mode (allowed: auto, always, never)", mode);
  if (mode != "auto") return mode == "always";
  const char* term = std::getenv("TERM");
  return isatty(fileno(stdout)) && term && *term && std::strcmp(term, "dumb") != 0 && mpi_launcher().empty();
}

void ProgressBar::clear() {
  if (!on_ || !drawn_) return;
  std::fputs("\r\033[K", out_);
  drawn_ = false;
}

void ProgressBar::draw(int64_t step, double sec_per_step) {
  if (!on_) return;
  const int width = 30;
  const double frac = double(step - first_ + 1) / double(std::max<int64_t>(1, last_ - first_ + 1));
  std::string bar(size_t(std::clamp(int(frac * width), 0, width)), '=');
  bar.resize(size_t(width), ' ');
  std::fprintf(out_, "[%s] %lld/%lld  eta %.0fs", bar.c_str(), (long long)step, (long long)last_,
               sec_per_step * double(last_ - step));
  std::fflush(out_);
  drawn_ = true;
}

}  // namespace tsp

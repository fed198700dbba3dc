// Preemption: SIGTERM and SIGINT (as mpirun, srun or a scheduler deliver them to every rank) ask training to
// stop at the next step boundary, where every rank agrees to stop, a checkpoint is written and the job exits
// with 128 + the signal (143 for SIGTERM, 130 for SIGINT). A second signal aborts at once: the process exits
// with the same status from the signal handler, abandoning a save in progress (the previous checkpoint is
// intact: train/checkpoint_manager.h).
#pragma once

#include "comm/communicator.h"

namespace tsp {

class StopSignals {
 public:
  // Installs the handlers (the previous ones come back in the destructor). `lead` prints the notices.
  explicit StopSignals(bool lead);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // Collective over world: the signal every rank agrees to stop on (SIGTERM if any rank got one, else SIGINT
  // if any got that), or 0. One all-reduce of two integers.
  int agreed(Communicator& world) const;
};

const char* signal_name(int sig);

}  // namespace tsp

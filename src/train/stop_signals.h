// Preemption: SIGTERM and SIGINT (as mpirun, srun or a scheduler deliver them to every rank) ask training to
// stop at the next step boundary, where every rank agrees to stop, a checkpoint is written and the job exits
// with 128 + the signal (143 for SIGTERM, 130 for SIGINT). A second signal aborts at once: the process exits
// with the same status, abandoning a save in progress (the previous checkpoint is intact:
// train/checkpoint_manager.h). Outside training the signals keep their default action.
//
// The signals are taken by one thread of their own (sigwait), never by a computing thread: main blocks them
// before MPI and every other thread start (start_stop_signal_thread), so every later thread inherits the
// block. Handled by whichever thread the kernel picked (mostly the main thread, inside MPI, oneDNN or
// OpenBLAS), 6 of 108 tp runs stopped by a signal corrupted their heap (malloc aborts, a segfault while
// printing the summary; uninterrupted runs never did); taken on this thread, 0 of 240
// (tests/cli/reliability/preempt_stress.sh). The handler StopSignals installs remains for threads that
// started before the block (a program that never called start_stop_signal_thread, e.g. a test).
#pragma once

#include "comm/communicator.h"

namespace tsp {

// Blocks SIGTERM and SIGINT in the calling thread (and so in every thread it starts from then on) and starts
// the detached thread that waits for them. Call first thing in main, before MPI_Init; idempotent.
void start_stop_signal_thread();

// Unblocks the two signals in the calling thread for a scope: a child started there (std::system) gets them
// as usual, so Ctrl-C still ends a plotting script.
class StopSignalsUnblocked {
 public:
  StopSignalsUnblocked();
  ~StopSignalsUnblocked();
  StopSignalsUnblocked(const StopSignalsUnblocked&) = delete;
  StopSignalsUnblocked& operator=(const StopSignalsUnblocked&) = delete;
};

class StopSignals {
 public:
  // Training listens from here on (the previous handlers come back in the destructor). `lead` prints the
  // notices.
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

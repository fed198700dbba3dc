// Exit statuses of tsp, documented in docs/reliability.md, so that a job script can tell what happened.
#pragma once

namespace tsp {

constexpr int kExitFailure = 1;       // a failure of one rank (the job is aborted with MPI_Abort)
constexpr int kExitUsage = 2;         // bad input, detected on every rank before any step
constexpr int kExitNonFinite = 3;     // training stopped on a non-finite loss or gradient norm
constexpr int kExitCommTimeout = 4;   // the watchdog aborted a communication call that never completed
constexpr int kExitSignalBase = 128;  // stopped by signal N: 128 + N (SIGINT 130, SIGTERM 143)

}  // namespace tsp

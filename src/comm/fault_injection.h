// Debug-only fault injection, so that tests can provoke for real what clusters do to a job: a rank killed
// (SIGKILL, segfault, abort), a rank that stops progressing, every rank killed at once in the middle of a
// checkpoint save, a NaN in a gradient or a weight. Nothing happens unless the environment variable
// TSP_DEBUG_FAULT is set; then exactly one fault fires, once, where it matches:
//
//   TSP_DEBUG_FAULT="action=ACTION[,rank=R][,step=S][,phase=P][,label=L][,count=N]"
//
//   action   sigkill | segv | abort   this rank dies by that signal
//            killall                  SIGKILL to every rank of the job, then to itself (kill -9 of the job)
//            hang                     this rank sleeps forever (a rank that stops progressing)
//            nan-grad | nan-weight    a NaN in this rank's first gradient / weight element of the block named
//                                     by label (default: the first block), after the backward / before the
//                                     forward of the step
//   rank     the rank in MPI_COMM_WORLD that acts (default 0)
//   step     the training step it happens in (default: any)
//   phase    the communication phase ("forward", "backward", "optimizer") or "save" for the checkpoint
//            manager's named points (default: any)
//   label    the communication label ("attn.kv_allgather") or save point ("save.renamed") (default: any)
//   count    fire at the N-th matching point (default 1)
//
// Points are the communicator's calls (every call, before it is posted) and the checkpoint manager's named
// save points; see docs/reliability.md for the list.
#pragma once

#include <cstdint>
#include <string_view>

namespace tsp {

namespace detail {
extern bool g_fault_armed;  // TSP_DEBUG_FAULT was set and its fault has not fired yet
}

// Reads TSP_DEBUG_FAULT (an error names a malformed value). Collective over MPI_COMM_WORLD when the action is
// killall (the ranks exchange their process ids). Call once on every rank before the first fault point.
void fault_init();
// The training step the following points belong to.
void fault_set_step(int64_t step);

void fault_point_slow(std::string_view phase, std::string_view label);
// A point where a fault may fire; costs one predictable branch when no fault is armed.
inline void fault_point(std::string_view phase, std::string_view label) {
  if (detail::g_fault_armed) fault_point_slow(phase, label);
}

// For nan-grad / nan-weight: the parameter block to poison on this rank now (its name matching `label`, or
// any block when the fault names none), or false. `what` is "nan-grad" or "nan-weight".
bool fault_wants_nan(std::string_view what, std::string_view block_name);

}  // namespace tsp

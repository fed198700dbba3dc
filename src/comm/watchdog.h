// The communication watchdog (in the spirit of NCCL's heartbeat / async error handling): a thread on every
// rank that notices when this rank has been blocked in one communication call for longer than the timeout
// (--comm-timeout), asks every other rank's watchdog where it is, prints which ranks have not arrived and
// what they are doing, and aborts the job (exit status 4) instead of letting it hang forever.
//
// The communicator marks every blocking call and every wait() with a CommWatchScope (label, phase); the
// trainer names the step. While no watchdog runs, a scope costs one predictable branch. The watchdogs talk
// over their own duplicate of MPI_COMM_WORLD from their own thread, which needs MPI_THREAD_MULTIPLE
// (Communicator::init asks for it); without it the watchdog does not start and says so.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "comm/communicator.h"

namespace tsp {

namespace detail {
extern std::atomic<bool> g_watch_on;
void watch_enter(std::string_view label, const std::string& phase);
void watch_leave();
}  // namespace detail

// Marks a blocking communication call (or a wait) for the watchdog.
class CommWatchScope {
 public:
  CommWatchScope(std::string_view label, const std::string& phase)
      : on_(detail::g_watch_on.load(std::memory_order_relaxed)) {
    if (on_) detail::watch_enter(label, phase);
  }
  ~CommWatchScope() {
    if (on_) detail::watch_leave();
  }
  CommWatchScope(const CommWatchScope&) = delete;
  CommWatchScope& operator=(const CommWatchScope&) = delete;

 private:
  bool on_;
};

// The training step reported by the watchdog.
void watchdog_set_step(int64_t step);

class Watchdog {
 public:
  // Collective over `comm` (the job's ranks; reports name ranks of it). timeout_s <= 0, one rank, or MPI
  // without MPI_THREAD_MULTIPLE: no thread (the last case prints a warning on rank 0).
  Watchdog(const Communicator& comm, double timeout_s);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;
  bool running() const { return impl_ != nullptr; }

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tsp

#include "train/stop_signals.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "core/exit_status.h"

namespace tsp {

namespace {

std::atomic<int> g_term{0}, g_int{0};
bool g_lead = false;
struct sigaction g_old_term, g_old_int;

void say(const char* msg) {
  // write(2) is async-signal-safe; stdio is not.
  ssize_t rc = ::write(STDERR_FILENO, msg, std::strlen(msg));
  (void)rc;
}

void on_signal(int sig) {
  std::atomic<int>& count = sig == SIGTERM ? g_term : g_int;
  if (g_term.load() + g_int.load() > 0) {
    if (g_lead)
      say(sig == SIGTERM ? "tsp: second signal (SIGTERM): aborting at once\n"
                         : "tsp: second signal (SIGINT): aborting at once\n");
    ::_exit(kExitSignalBase + sig);
  }
  count.fetch_add(1);
  if (g_lead)
    say(sig == SIGTERM
            ? "tsp: SIGTERM received: stopping after this step and writing a checkpoint (signal again "
              "to abort at once)\n"
            : "tsp: SIGINT received: stopping after this step and writing a checkpoint (signal again "
              "to abort at once)\n");
}

}  // namespace

StopSignals::StopSignals(bool lead) {
  g_lead = lead;
  g_term = 0;
  g_int = 0;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking system calls (file writes of a save) continue after the handler
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGINT, &sa, &g_old_int);
}

StopSignals::~StopSignals() {
  sigaction(SIGTERM, &g_old_term, nullptr);
  sigaction(SIGINT, &g_old_int, nullptr);
}

int StopSignals::agreed(Communicator& world) const {
  int32_t v[2] = {g_term.load() > 0 ? 1 : 0, g_int.load() > 0 ? 1 : 0};
  if (world.size() > 1) world.all_reduce("train.stop_signal_allreduce", v, 2);
  if (v[0] > 0) return SIGTERM;
  if (v[1] > 0) return SIGINT;
  return 0;
}

const char* signal_name(int sig) {
  return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

}  // namespace tsp

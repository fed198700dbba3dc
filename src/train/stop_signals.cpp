#include "train/stop_signals.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "core/exit_status.h"

namespace tsp {

namespace {

std::atomic<int> g_term{0}, g_int{0};
std::atomic<bool> g_listening{false}, g_lead{false}, g_thread_started{false};
struct sigaction g_old_term, g_old_int;

void say(const char* msg) {
  // write(2) is async-signal-safe; stdio is not.
  ssize_t rc = ::write(STDERR_FILENO, msg, std::strlen(msg));
  (void)rc;
}

// A stop signal while training listens: the first asks for a stop at the next step boundary, a second aborts
// at once. Async-signal-safe (it also runs as a signal handler).
void on_stop_signal(int sig) {
  std::atomic<int>& count = sig == SIGTERM ? g_term : g_int;
  const bool lead = g_lead.load();
  if (g_term.load() + g_int.load() > 0) {
    if (lead)
      say(sig == SIGTERM ? "tsp: second signal (SIGTERM): aborting at once\n"
                         : "tsp: second signal (SIGINT): aborting at once\n");
    ::_exit(kExitSignalBase + sig);
  }
  count.fetch_add(1);
  if (lead)
    say(sig == SIGTERM
            ? "tsp: SIGTERM received: stopping after this step and writing a checkpoint (signal again "
              "to abort at once)\n"
            : "tsp: SIGINT received: stopping after this step and writing a checkpoint (signal again "
              "to abort at once)\n");
}

sigset_t stop_set() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

void wait_for_signals() {
  const sigset_t set = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (g_listening.load()) {
      on_stop_signal(sig);
      continue;
    }
    // Nobody listens: the default action, as if tsp had never blocked the signal (the process ends by it).
    struct sigaction dfl;
    std::memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, nullptr);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    ::raise(sig);  // this thread, the only one not blocking it
    ::_exit(kExitSignalBase + sig);
  }
}

}  // namespace

void start_stop_signal_thread() {
  if (g_thread_started.exchange(true)) return;
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // Detached: it waits until the process ends and owns nothing that needs destroying.
  std::thread(wait_for_signals).detach();
}

StopSignalsUnblocked::StopSignalsUnblocked() {
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

StopSignalsUnblocked::~StopSignalsUnblocked() {
  if (!g_thread_started.load()) return;
  const sigset_t set = stop_set();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
}

StopSignals::StopSignals(bool lead) {
  g_lead = lead;
  g_term = 0;
  g_int = 0;
  g_listening = true;
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;  // blocking system calls (file writes of a save) continue after the handler
  sigaction(SIGTERM, &sa, &g_old_term);
  sigaction(SIGINT, &sa, &g_old_int);
}

StopSignals::~StopSignals() {
  g_listening = false;
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

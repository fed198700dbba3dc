#include "comm/fault_injection.h"

#include <mpi.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/check.h"

namespace tsp {

namespace detail {
bool g_fault_armed = false;
}

namespace {

struct Fault {
  std::string action, phase, label;
  int rank = 0;
  int64_t step = -1;  // -1: any
  int64_t count = 1;
  int64_t seen = 0;
};

Fault g_fault;
int64_t g_step = 0;
int g_rank = 0;
std::vector<int> g_pids;  // every rank's process id (killall)

double epoch_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The test harness measures the time from the fault to the end of the job from this line.
void announce(std::string_view phase, std::string_view label) {
  std::fprintf(stderr, "[rank %d] TSP_DEBUG_FAULT: %s at step %lld, %.*s '%.*s' (t=%.3f)\n", g_rank,
               g_fault.action.c_str(), (long long)g_step, int(phase.size()), phase.data(), int(label.size()),
               label.data(), epoch_seconds());
  std::fflush(stderr);
}

bool matches(std::string_view phase, std::string_view label) {
  if (g_rank != g_fault.rank) return false;
  if (g_fault.step >= 0 && g_step != g_fault.step) return false;
  if (!g_fault.phase.empty() && phase != g_fault.phase) return false;
  if (!g_fault.label.empty() && label != g_fault.label) return false;
  return ++g_fault.seen == g_fault.count;
}

void fire(std::string_view phase, std::string_view label) {
  detail::g_fault_armed = false;
  announce(phase, label);
  const std::string& a = g_fault.action;
  if (a == "sigkill") {
    ::kill(::getpid(), SIGKILL);
  } else if (a == "segv") {
    // A real invalid memory access, not a raised signal: what a crashing kernel does.
    volatile int* volatile nowhere = nullptr;
    *nowhere = 1;
  } else if (a == "abort") {
    std::abort();
  } else if (a == "killall") {
    for (size_t r = 0; r < g_pids.size(); ++r)
      if (int(r) != g_rank) ::kill(g_pids[r], SIGKILL);
    ::kill(::getpid(), SIGKILL);
  } else if (a == "hang") {
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

void fault_init() {
  const char* env = std::getenv("TSP_DEBUG_FAULT");
  if (!env || !*env) return;
  int init = 0;
  MPI_Initialized(&init);
  if (init) MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
  Fault f;
  std::string s(env);
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t end = std::min(s.find(',', pos), s.size());
    const std::string kv = s.substr(pos, end - pos);
    const size_t eq = kv.find('=');
    TSP_REQUIRE(eq != std::string::npos, "TSP_DEBUG_FAULT: '{}' is not key=value (in '{}')", kv, s);
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    try {
      if (k == "action")
        f.action = v;
      else if (k == "rank")
        f.rank = std::stoi(v);
      else if (k == "step")
        f.step = std::stoll(v);
      else if (k == "phase")
        f.phase = v;
      else if (k == "label")
        f.label = v;
      else if (k == "count")
        f.count = std::stoll(v);
      else
        throw UsageError(
            fmt::format("TSP_DEBUG_FAULT: unknown key '{}' (allowed: action, rank, step, phase, "
                        "label, count)",
                        k));
    } catch (const std::logic_error&) {
      throw UsageError(fmt::format("TSP_DEBUG_FAULT: {}={} is not a number", k, v));
    }
    pos = end + 1;
  }
  static const char* kActions[] = {"sigkill", "segv", "abort", "killall", "hang", "nan-grad", "nan-weight"};
  bool known = false;
  for (const char* a : kActions) known = known || f.action == a;
  TSP_REQUIRE(
      known,
      "TSP_DEBUG_FAULT: action '{}' is unknown (allowed: sigkill, segv, abort, killall, hang, nan-grad, "
      "nan-weight)",
      f.action);
  TSP_REQUIRE(f.count >= 1, "TSP_DEBUG_FAULT: count must be >= 1, got {}", f.count);
  if (f.action == "killall" && init) {
    int size = 1;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int pid = int(::getpid());
    g_pids.assign(size_t(size), 0);
    MPI_Allgather(&pid, 1, MPI_INT, g_pids.data(), 1, MPI_INT, MPI_COMM_WORLD);
  }
  g_fault = f;
  detail::g_fault_armed = true;
}

void fault_set_step(int64_t step) {
  g_step = step;
}

void fault_point_slow(std::string_view phase, std::string_view label) {
  if (g_fault.action.starts_with("nan-")) return;
  if (matches(phase, label)) fire(phase, label);
}

bool fault_wants_nan(std::string_view what, std::string_view block_name) {
  if (!detail::g_fault_armed || g_fault.action != what) return false;
  if (g_rank != g_fault.rank || (g_fault.step >= 0 && g_step != g_fault.step)) return false;
  if (!g_fault.label.empty() && block_name != g_fault.label) return false;
  detail::g_fault_armed = false;
  announce(what == "nan-grad" ? "backward" : "forward", block_name);
  return true;
}

}  // namespace tsp

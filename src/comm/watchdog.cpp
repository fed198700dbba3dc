#include "comm/watchdog.h"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "core/exit_status.h"

namespace tsp {

namespace detail {
std::atomic<bool> g_watch_on{false};
}

namespace {

constexpr int kQueryTag = 1, kReplyTag = 2;
// How often the watchdog thread looks at this rank's state and answers other ranks' queries: short enough
// that a query is answered well inside the reporting window, long enough to cost nothing.
constexpr auto kPoll = std::chrono::milliseconds(100);
// How long a timed-out rank waits for the others' answers before reporting the silent ones as dead.
constexpr double kAnswerWindowS = 5.0;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <size_t N>
void copy_name(char (&dst)[N], std::string_view src) {
  const size_t n = std::min(src.size(), N - 1);
  std::memcpy(dst, src.data(), n);
  dst[n] = '\0';
}

// What one rank reports about itself; sent as raw bytes between the watchdogs of one job (same binary).
struct Report {
  int64_t step = 0;
  int64_t calls = 0;    // blocking calls entered so far
  int32_t in_call = 0;  // blocked in a call right now
  double since = 0;     // seconds in the current call, or since the last one ended (in a snapshot)
  char label[64] = "";  // the current call, or the last one
  char phase[32] = "";
};

std::mutex g_mu;
Report g_state;  // this rank's state, `since` as an absolute steady-clock time
std::atomic<int64_t> g_step{0};

Report snapshot() {
  std::lock_guard<std::mutex> lock(g_mu);
  Report r = g_state;
  r.step = g_step.load(std::memory_order_relaxed);
  // Clocks of different nodes do not agree: ranks exchange durations.
  r.since = now_s() - r.since;
  return r;
}

}  // namespace

namespace detail {

void watch_enter(std::string_view label, const std::string& phase) {
  const double t = now_s();
  std::lock_guard<std::mutex> lock(g_mu);
  g_state.in_call = 1;
  g_state.since = t;
  ++g_state.calls;
  copy_name(g_state.label, label);
  copy_name(g_state.phase, phase);
}

void watch_leave() {
  const double t = now_s();
  std::lock_guard<std::mutex> lock(g_mu);
  g_state.in_call = 0;
  g_state.since = t;
}

}  // namespace detail

void watchdog_set_step(int64_t step) {
  g_step.store(step, std::memory_order_relaxed);
}

struct Watchdog::Impl {
  double timeout_s = 0;
  MPI_Comm comm = MPI_COMM_NULL;
  int rank = 0, size = 1;
  int query_buf = 0;
  MPI_Request query_req = MPI_REQUEST_NULL;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;

  void post_query_recv() { MPI_Irecv(&query_buf, 1, MPI_INT, MPI_ANY_SOURCE, kQueryTag, comm, &query_req); }

  // Answers every query that has arrived with this rank's state.
  void answer_queries() {
    for (;;) {
      int done = 0;
      MPI_Status st;
      MPI_Test(&query_req, &done, &st);
      if (!done) return;
      Report r = snapshot();
      MPI_Send(&r, int(sizeof r), MPI_BYTE, st.MPI_SOURCE, kReplyTag, comm);
      post_query_recv();
    }
  }

  static std::string describe(int r, const Report& s) {
    if (s.in_call)
      return fmt::format("rank {} (blocked {:.1f} s in '{}', phase {}, step {})", r, s.since, s.label,
                         s.phase, s.step);
    if (s.calls == 0) return fmt::format("rank {} (step {}, no communication call yet)", r, s.step);
    return fmt::format("rank {} (step {}, outside communication for {:.1f} s since '{}' in phase {})", r,
                       s.step, s.since, s.label, s.phase);
  }

  // This rank has waited too long in `me`: ask every rank where it is, say who has not arrived, abort.
  [[noreturn]] void report_and_abort(const Report& me) {
    std::vector<Report> replies(static_cast<size_t>(size));
    std::vector<MPI_Request> recvs(size_t(size), MPI_REQUEST_NULL);
    std::vector<int> answered(size_t(size), 0);
    int query = 1;
    for (int r = 0; r < size; ++r) {
      if (r == rank) continue;
      MPI_Irecv(&replies[size_t(r)], int(sizeof(Report)), MPI_BYTE, r, kReplyTag, comm, &recvs[size_t(r)]);
      MPI_Request s;
      MPI_Isend(&query, 1, MPI_INT, r, kQueryTag, comm, &s);
      MPI_Request_free(&s);  // a dead rank never takes it; nothing waits for it
    }
    const double deadline = now_s() + kAnswerWindowS;
    int missing = size - 1;
    while (missing > 0 && now_s() < deadline) {
      answer_queries();  // other ranks that timed out at the same moment ask us too
      for (int r = 0; r < size; ++r) {
        if (r == rank || answered[size_t(r)]) continue;
        int done = 0;
        MPI_Test(&recvs[size_t(r)], &done, MPI_STATUS_IGNORE);
        if (done) answered[size_t(r)] = 1, --missing;
      }
      if (missing > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<std::string> behind;
    for (int r = 0; r < size; ++r) {
      if (r == rank) continue;
      const Report& s = replies[size_t(r)];
      if (!answered[size_t(r)])
        behind.push_back(
            fmt::format("rank {} (no answer within {:.0f} s: dead or stopped)", r, kAnswerWindowS));
      else if (!(s.in_call && std::strcmp(s.label, me.label) == 0 && std::strcmp(s.phase, me.phase) == 0))
        behind.push_back(describe(r, s));
    }
    std::string list;
    for (const auto& b : behind) list += (list.empty() ? "" : "; ") + b;
    if (list.empty()) list = "none (every rank is blocked in the same call: a mismatched collective?)";
    std::fprintf(stderr,
                 "[rank %d] error: communication timeout: '%s' (phase %s, step %lld) has waited %.1f s "
                 "(--comm-timeout %g); ranks not arrived: %s. Aborting the job.\n",
                 rank, me.label, me.phase, (long long)me.step, me.since, timeout_s, list.c_str());
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, kExitCommTimeout);
    std::_Exit(kExitCommTimeout);
  }

  void run() {
    std::unique_lock<std::mutex> lock(mu);
    while (!stop) {
      cv.wait_for(lock, kPoll);
      if (stop) break;
      answer_queries();
      const Report s = snapshot();
      if (s.in_call && s.since > timeout_s) report_and_abort(s);
    }
  }
};

Watchdog::Watchdog(const Communicator& comm, double timeout_s) {
  const int size = comm.size(), rank = comm.rank();
  if (timeout_s <= 0 || size == 1) return;
  if (!Communicator::thread_multiple()) {
    if (rank == 0)
      std::fprintf(
          stderr,
          "warning: --comm-timeout is off: the MPI library does not provide MPI_THREAD_MULTIPLE, which "
          "the watchdog thread needs\n");
    return;
  }
  impl_ = std::make_unique<Impl>();
  impl_->timeout_s = timeout_s;
  impl_->rank = rank;
  impl_->size = size;
  MPI_Comm_dup(comm.raw(), &impl_->comm);
  impl_->post_query_recv();
  {
    std::lock_guard<std::mutex> lock(g_mu);
    g_state = Report{};
  }
  detail::g_watch_on.store(true);
  impl_->thread = std::thread([p = impl_.get()] { p->run(); });
}

Watchdog::~Watchdog() {
  if (!impl_) return;
  detail::g_watch_on.store(false);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  impl_->thread.join();
  MPI_Cancel(&impl_->query_req);
  MPI_Wait(&impl_->query_req, MPI_STATUS_IGNORE);
  // Collective: every rank's watchdog ends at the same point of the program (end of training).
  MPI_Comm_free(&impl_->comm);
}

}  // namespace tsp

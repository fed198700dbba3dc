// One communicator over MPI. Every call names its call site with a label ("attn.kv_allgather", ...); the
// communicator counts, per (phase, label): the operation, calls, payload bytes, bytes received by this rank and
// seconds spent waiting, and (when tracing is on) records a "comm" span.
//
// Bytes received by this rank are counted as the textbook algorithm moves them, so that they can be compared
// with closed-form formulas (tsp-spec.md §9):
//   broadcast       n elements: non-root ranks receive n; the root receives 0.
//   all_gather      n per rank: every rank receives (P-1)·n.
//   reduce_scatter  n per rank (input P·n): every rank receives (P-1)·n partial sums.
//   reduce          n to root: the root receives (P-1)·n, others 0 (the adjoint of broadcast).
//   all_reduce      n: every rank receives 2·(P-1)/P·n (ring: reduce-scatter + all-gather).
//   send_recv       receives exactly what is posted to arrive.
// payload_bytes is the size of the logical buffer of the call (n, P·n for gathers/scatters' full side as
// documented per call) — see Stats below.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace tsp {

struct CommCounter {
  std::string op;             // "broadcast", "all_gather", "reduce_scatter", "reduce", "all_reduce", "send_recv"
  int64_t calls = 0;
  int64_t payload_bytes = 0;  // per call: the contribution of this rank (broadcast/reduce/all_reduce: n;
                              // all_gather/reduce_scatter: the per-rank block n; send_recv: bytes sent)
  int64_t recv_bytes = 0;     // as documented above
  double seconds = 0;         // time blocked in the call (blocking) or in wait() (non-blocking)
};

// phase -> label -> counter. Phases are set by the caller ("forward", "backward", "optimizer", ...).
using CommStats = std::map<std::string, std::map<std::string, CommCounter>>;

// A pending non-blocking operation; wait() completes it and charges the waited time to its label.
class CommRequest {
 public:
  CommRequest() = default;
  bool active() const { return !reqs_.empty(); }

 private:
  friend class Communicator;
  std::vector<MPI_Request> reqs_;
  std::string phase_, label_;
  double t_start_us_ = 0;
};

class Communicator {
 public:
  // Call once at the top of main(): applies the malloc fix from machine.md (no mmap for large blocks, no trim)
  // before MPI_Init_thread, and makes MPI errors return codes that we turn into exceptions.
  static void init(int* argc, char*** argv);
  static void finalize();
  static bool initialized();
  // Kills every rank of the job with `message` printed by this rank (used for failures of one rank).
  [[noreturn]] static void abort(const std::string& message, int code = 1);

  // The world communicator (requires init()).
  static Communicator world();
  explicit Communicator(MPI_Comm comm, bool owned = false);
  ~Communicator();
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm raw() const { return comm_; }
  // MPI_Comm_split: ranks with the same color form a new communicator, ordered by key. Counters are separate.
  Communicator split(int color, int key) const;

  // Accounting phase for the following calls ("forward", "backward", ...).
  void set_phase(std::string phase) { phase_ = std::move(phase); }
  const std::string& phase() const { return phase_; }
  const CommStats& stats() const { return *stats_; }
  void reset_stats() { stats_->clear(); }

  // Blocking collectives (T = float, double, int32_t, int64_t). Sums for the reductions.
  template <class T> void broadcast(std::string_view label, T* buf, int64_t n, int root);
  template <class T> void all_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T> void reduce_scatter(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T> void reduce(std::string_view label, const T* send, T* recv, int64_t n, int root);
  template <class T> void all_reduce(std::string_view label, T* buf, int64_t n);
  template <class T>
  void send_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv, int64_t n_recv,
                 int source);
  void barrier();

  // Non-blocking versions: the transfer proceeds while the caller computes; wait() charges the blocked time.
  template <class T> CommRequest ibroadcast(std::string_view label, T* buf, int64_t n, int root);
  template <class T>
  CommRequest iall_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T>
  CommRequest isend_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv,
                         int64_t n_recv, int source);
  void wait(CommRequest& r);

 private:
  CommCounter& counter(std::string_view label, const char* op);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
  std::string phase_ = "forward";
  std::unique_ptr<CommStats> stats_;
};

// Throws tsp::Error naming the MPI call, the rank and MPI's error string when rc != MPI_SUCCESS.
void mpi_check(int rc, const char* what);

}  // namespace tsp

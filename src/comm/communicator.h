// One communicator over MPI. Every call names its call site with a label ("attn.kv_allgather", ...); the
// communicator counts, per (phase, label): the operation, calls, payload bytes, bytes received by this rank
// and seconds spent blocked, and (when tracing is on) records a "comm" span named after the label covering
// the blocked time (the blocking call itself, or wait() for a non-blocking one).
//
// Bytes received by this rank are counted as the textbook algorithm moves them, so that they can be compared
// with closed-form formulas (tsp-spec.md §9); n is in bytes below (elements · sizeof(T)):
//   broadcast       n: non-root ranks receive n; the root receives 0.
//   all_gather      n per rank: every rank receives (P-1)·n.
//   reduce_scatter  n per rank (input P·n): every rank receives (P-1)·n partial sums.
//   reduce          n to root: the root receives (P-1)·n, others 0 (the adjoint of broadcast).
//   all_reduce      n: every rank receives 2·(P-1)·n/P (ring: reduce-scatter + all-gather), counted in
//                   whole bytes as floor(2·(P-1)·n / P): exact whenever P divides 2·n.
//   send_recv       receives exactly what is posted to arrive (n_recv).
//   all_gather_v    counts[r] from rank r: every rank receives the sum of the other ranks' counts.
//   all_to_all_v    receives the sum of recv_counts[j] over the other ranks j (a rank's block to itself is a
//                   local copy and not counted).
// With P == 1 every collective is a local copy (or a no-op) without MPI; it receives 0 bytes but is still
// counted as a call. payload_bytes is documented on CommCounter.
//
// Counts are int64_t. Messages above INT_MAX elements are not truncated: broadcasts, gathers and
// point-to-point transfers use one derived contiguous datatype, reductions are split into chunks (MPI's
// predefined MPI_SUM is only defined on predefined datatypes).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tsp {

struct CommCounter {
  std::string op;  // "broadcast", "all_gather", "reduce_scatter", "reduce", "all_reduce", "send_recv"
  int64_t calls = 0;
  // Summed over calls; per call the contribution of this rank in bytes (broadcast/reduce/all_reduce: n;
  // all_gather/reduce_scatter: the per-rank block n; send_recv: bytes sent).
  int64_t payload_bytes = 0;
  int64_t recv_bytes = 0;  // summed over calls, as documented at the top of this file
  double seconds = 0;      // time blocked in the call (blocking) or in wait() (non-blocking)
};

// phase -> label -> counter. Phases are set by the caller ("forward", "backward", "optimizer", ...).
using CommStats = std::map<std::string, std::map<std::string, CommCounter>>;

// A pending non-blocking operation; wait() completes it and charges the waited time to the (phase, label) it
// was posted under. It must be waited before its buffers go away (MPI still owns them until then).
class CommRequest {
 public:
  CommRequest() = default;
  // Moving hands the pending operation over; the source becomes inactive so that it cannot be waited twice.
  CommRequest(CommRequest&& o) noexcept { *this = std::move(o); }
  CommRequest& operator=(CommRequest&& o) noexcept {
    pending_ = std::exchange(o.pending_, false);
    reqs_ = std::exchange(o.reqs_, {});
    phase_ = std::move(o.phase_);
    label_ = std::move(o.label_);
    op_ = o.op_;
    return *this;
  }
  CommRequest(const CommRequest&) = delete;
  CommRequest& operator=(const CommRequest&) = delete;
  // Posted and not yet waited (also when nothing was sent, e.g. with P == 1, so that code is uniform in P).
  bool active() const { return pending_; }

 private:
  friend class Communicator;
  bool pending_ = false;
  std::vector<MPI_Request> reqs_;
  std::string phase_, label_;
  const char* op_ = "";
};

class Communicator {
 public:
  // Call once at the top of main(): applies the malloc fix from machine.md (no mmap for large blocks, no
  // trim) before MPI_Init_thread, and makes MPI errors return codes that we turn into exceptions. MPI is
  // initialised with MPI_THREAD_MULTIPLE: the main thread makes every call of the computation, the
  // watchdog thread (comm/watchdog.h) its own calls on its own communicator. A second call does nothing.
  static void init(int* argc, char*** argv);
  // MPI_Finalize, if initialised and not yet finalised.
  static void finalize();
  static bool initialized();
  // Whether MPI provides MPI_THREAD_MULTIPLE (the communication watchdog needs it).
  static bool thread_multiple();
  // Kills every rank of the job with "[rank r] error: <message>" printed by this rank (used for failures of
  // one rank). Before MPI_Init (or after MPI_Finalize) it only exits this process with `code`.
  [[noreturn]] static void abort(const std::string& message, int code = 1);

  // A non-owning communicator over MPI_COMM_WORLD (requires init()); every call returns fresh counters.
  static Communicator world();
  // Wraps `comm`; an owned communicator is freed (MPI_Comm_free) by the destructor.
  explicit Communicator(MPI_Comm comm, bool owned = false);
  ~Communicator();
  Communicator(Communicator&&) noexcept;
  Communicator& operator=(Communicator&&) noexcept;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  MPI_Comm raw() const { return comm_; }
  // MPI_Comm_split (collective): ranks with the same color (>= 0) form a new, owned communicator, ordered by
  // key. Its counters and phase are separate from this one's.
  Communicator split(int color, int key) const;
  // The same split, but the new communicator counts into this one's counters and shares its phase: the axes
  // of a mesh (TP group, SP group, DP replicas) then report one set of (phase, label) counters, and
  // set_phase on any of them names the phase for all.
  Communicator split_shared(int color, int key) const;

  // Accounting phase for the following calls ("forward", "backward", ...).
  void set_phase(std::string phase) { acct_->phase = std::move(phase); }
  const std::string& phase() const { return acct_->phase; }
  const CommStats& stats() const { return acct_->stats; }
  void reset_stats() { acct_->stats.clear(); }

  // Blocking collectives (T = float, double, int32_t, int64_t, and uint16_t holding bf16 bit patterns, whose
  // sum widens, adds in fp32 and rounds to bf16 at every step). Sums for the reductions.
  //   all_gather: recv holds P·n_per_rank, rank r's block at r·n_per_rank; send may point at that block.
  //   reduce_scatter: send holds P·n_per_rank, rank r receives the sum of every rank's block r.
  //   reduce: recv is only written on the root (may be null elsewhere) and may equal send there.
  //   all_reduce: in place.
  //   send_recv: a zero count means no message in that direction (dest/source may then be anything, e.g.
  //     MPI_PROC_NULL), so the two ends of an exchange must agree on every count. Messages use one fixed tag
  //     and match in posting order (MPI's non-overtaking rule), which SPMD code posting the same sequence on
  //     every rank satisfies.
  template <class T>
  void broadcast(std::string_view label, T* buf, int64_t n, int root);
  template <class T>
  void all_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T>
  void reduce_scatter(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T>
  void reduce(std::string_view label, const T* send, T* recv, int64_t n, int root);
  template <class T>
  void all_reduce(std::string_view label, T* buf, int64_t n);
  template <class T>
  void send_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv, int64_t n_recv,
                 int source);
  // Variable-size exchanges (decode: candidates of a sharded sampler, new keys/values to their owners).
  //   all_gather_v: rank r contributes counts[r] elements (every rank passes the same counts); recv holds
  //     them concatenated in rank order.
  //   all_to_all_v: rank r sends send_counts[j] elements to rank j (blocks consecutive in send, in rank
  //     order) and receives recv_counts[j] from rank j (consecutive in recv, in rank order); the counts of
  //     the two ends must agree. Counts must fit a 32-bit MPI count.
  template <class T>
  void all_gather_v(std::string_view label, const T* send, T* recv, const std::vector<int64_t>& counts);
  template <class T>
  void all_to_all_v(std::string_view label, const T* send, const std::vector<int64_t>& send_counts, T* recv,
                    const std::vector<int64_t>& recv_counts);
  void barrier();
  // root's text on every rank (two broadcasts under `label`: the length, then the characters).
  std::string broadcast_text(std::string_view label, const std::string& text, int root);

  // Non-blocking versions: the transfer proceeds while the caller computes. Calls and bytes are counted when
  // posted (same ops as the blocking versions); wait() charges the blocked time. isend_recv posts an
  // MPI_Irecv and an MPI_Isend with the same tag and zero-count rule as send_recv.
  // The reductions, non-blocking: same buffers rules and accounting as the blocking ones; the send buffer
  // must stay unchanged and the receive buffer unread until wait().
  template <class T>
  CommRequest ireduce_scatter(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T>
  CommRequest ireduce(std::string_view label, const T* send, T* recv, int64_t n, int root);
  template <class T>
  CommRequest iall_reduce(std::string_view label, T* buf, int64_t n);
  template <class T>
  CommRequest ibroadcast(std::string_view label, T* buf, int64_t n, int root);
  template <class T>
  CommRequest iall_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank);
  template <class T>
  CommRequest isend_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv,
                         int64_t n_recv, int source);
  // Completes `r` (MPI_Waitall) and makes it inactive; an inactive request returns at once.
  void wait(CommRequest& r);
  // Process-wide (default on). Off, every non-blocking call above completes before it returns, so double
  // buffers hide nothing and all transfer time shows as exposed: the baseline that measures what the
  // overlap hides (tsp bench --no-overlap, docs/bench.md). Results and bytes are unchanged.
  static void set_overlap(bool on);
  static bool overlap();

 private:
  // The counter of (phase, label), created with `op`; a label reused for a different op is a programming
  // error.
  CommCounter& counter(std::string_view label, const char* op);
  CommCounter& account(std::string_view label, const char* op, int64_t payload_bytes, int64_t recv_bytes);
  void charge(const std::string& phase, std::string_view label, const char* op, double t0_us);
  CommRequest pending(std::string_view label, const char* op) const;
  CommRequest posted(CommRequest r);
  MPI_Comm comm_ = MPI_COMM_NULL;
  bool owned_ = false;
  int rank_ = 0, size_ = 1;
  // Phase and counters; shared between communicators made by split_shared.
  struct Accounting {
    std::string phase = "forward";
    CommStats stats;
  };
  std::shared_ptr<Accounting> acct_;
};

// Throws tsp::Error naming the MPI call, the rank in MPI_COMM_WORLD and MPI's error string when
// rc != MPI_SUCCESS.
void mpi_check(int rc, const char* what);

namespace detail {
// The largest element count passed to one MPI call (default INT_MAX). Tests lower it to exercise the derived
// datatype and chunking paths with small buffers; returns the previous value.
int64_t comm_set_max_count(int64_t max_count);
}  // namespace detail

}  // namespace tsp

#include "comm/communicator.h"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>

#include "comm/fault_injection.h"
#include "comm/watchdog.h"
#include "core/check.h"
#include "core/trace.h"
#include "kernels/bf16.h"

namespace tsp {

namespace {

int64_t g_max_count = INT_MAX;
// tsp bench --no-overlap: every non-blocking call is waited as soon as it is posted
// (Communicator::set_overlap).
std::atomic<bool> g_overlap{true};
int g_thread_level = MPI_THREAD_SINGLE;

// Point-to-point messages match in posting order under one tag (MPI's non-overtaking rule), see the header.
constexpr int kSendRecvTag = 7;

template <class T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<int32_t>() {
  return MPI_INT32_T;
}
template <>
MPI_Datatype mpi_type<uint16_t>() {
  return MPI_UINT16_T;  // bf16 bit patterns (kernels/bf16.h), summed by bf16_sum below
}
template <>
MPI_Datatype mpi_type<char>() {
  return MPI_CHAR;  // text (a JSON document) is only broadcast
}
template <>
MPI_Datatype mpi_type<int64_t>() {
  return MPI_INT64_T;
}

// uint16_t on the wire is bf16 (the bf16 policy's activations and, with --grad-reduce-dtype bf16, gradients):
// MPI has no bf16 type, so its sum is a user operation that widens both operands, adds them in fp32 and
// rounds the sum to nearest even, as a bf16 add does. Every partial sum of a reduction is rounded, as NCCL's
// bf16 sums are. Commutative like MPI_SUM, so MPI picks the same algorithms (and every rank of an all-reduce
// gets the same bits, as with fp32).
void bf16_sum(void* in, void* inout, int* len, MPI_Datatype*) {
  const auto* a = static_cast<const uint16_t*>(in);
  auto* b = static_cast<uint16_t*>(inout);
  for (int i = 0; i < *len; ++i) b[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i]));
}

template <class T>
MPI_Op sum_op() {
  if constexpr (std::is_same_v<T, uint16_t>) {
    static const MPI_Op op = [] {
      MPI_Op o;
      mpi_check(MPI_Op_create(&bf16_sum, 1, &o), "MPI_Op_create");
      return o;
    }();
    return op;
  }
  return MPI_SUM;
}

bool mpi_usable() {
  int init = 0, fin = 0;
  MPI_Initialized(&init);
  MPI_Finalized(&fin);
  return init && !fin;
}

int world_rank() {
  if (!mpi_usable()) return -1;
  int r = -1;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// The label of the call site helps more than the MPI function name when a job fails in a big model.
void check_call(int rc, const char* what, std::string_view label) {
  if (rc != MPI_SUCCESS) mpi_check(rc, fmt::format("{} [{}]", what, label).c_str());
}

// n elements as (count, datatype) for one call without a reduction. Above the per-call count limit a single
// derived datatype describes the whole buffer: `body` = q chunks of `max` elements, then a tail of r
// elements, resized so that its extent is exactly n elements (all_gather places rank j's block at j·extent).
class Contiguous {
 public:
  Contiguous(MPI_Datatype base, int64_t n, size_t elem_size) : type(base) {
    TSP_CHECK(n >= 0, "negative element count {}", n);
    if (n <= g_max_count) {
      count = static_cast<int>(n);
      return;
    }
    const int64_t q = n / g_max_count, r = n % g_max_count;
    TSP_CHECK(q <= INT_MAX, "message of {} elements is too large for one MPI datatype", n);
    MPI_Datatype chunk, body, whole;
    mpi_check(MPI_Type_contiguous(static_cast<int>(g_max_count), base, &chunk), "MPI_Type_contiguous");
    mpi_check(MPI_Type_contiguous(static_cast<int>(q), chunk, &body), "MPI_Type_contiguous");
    MPI_Type_free(&chunk);
    if (r == 0) {
      whole = body;
    } else {
      MPI_Datatype tail;
      mpi_check(MPI_Type_contiguous(static_cast<int>(r), base, &tail), "MPI_Type_contiguous");
      int lens[2] = {1, 1};
      MPI_Aint displs[2] = {0, static_cast<MPI_Aint>(q * g_max_count * static_cast<int64_t>(elem_size))};
      MPI_Datatype types[2] = {body, tail};
      mpi_check(MPI_Type_create_struct(2, lens, displs, types, &whole), "MPI_Type_create_struct");
      MPI_Type_free(&body);
      MPI_Type_free(&tail);
    }
    // A struct's extent may be padded for alignment; the buffer is exactly n elements.
    mpi_check(
        MPI_Type_create_resized(whole, 0, static_cast<MPI_Aint>(n * static_cast<int64_t>(elem_size)), &type),
        "MPI_Type_create_resized");
    MPI_Type_free(&whole);
    mpi_check(MPI_Type_commit(&type), "MPI_Type_commit");
    owned_ = true;
    count = 1;
  }
  // Freeing a datatype that a posted non-blocking operation uses is allowed: MPI completes the operation.
  ~Contiguous() {
    if (owned_) MPI_Type_free(&type);
  }
  Contiguous(const Contiguous&) = delete;
  Contiguous& operator=(const Contiguous&) = delete;

  int count = 0;
  MPI_Datatype type;

 private:
  bool owned_ = false;
};

// Reductions cannot use derived datatypes with MPI_SUM, so they run as consecutive chunks of at most
// g_max_count.
template <class F>
void for_each_chunk(int64_t n, F&& f) {
  for (int64_t off = 0; off < n; off += g_max_count) f(off, static_cast<int>(std::min(g_max_count, n - off)));
}

void check_count(std::string_view label, int64_t n) {
  TSP_CHECK(n >= 0, "comm call '{}': element count {} is negative", label, n);
}

template <class T>
void copy_elems(const T* src, T* dst, int64_t n) {
  if (n > 0 && src != dst) std::memmove(dst, src, static_cast<size_t>(n) * sizeof(T));
}

CommCounter& find_counter(CommStats& stats, const std::string& phase, std::string_view label,
                          const char* op) {
  CommCounter& c = stats[phase][std::string(label)];
  if (c.op.empty()) c.op = op;
  TSP_CHECK(c.op == op,
            "comm label '{}' in phase '{}' is used for both {} and {}; give each call site its own label",
            label, phase, c.op, op);
  return c;
}

}  // namespace

void mpi_check(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, msg, &len) != MPI_SUCCESS) std::snprintf(msg, sizeof msg, "MPI error code %d", rc);
  const int r = world_rank();
  throw Error(
      fmt::format("{} failed on rank {}: {}", what, r >= 0 ? std::to_string(r) : std::string("?"), msg));
}

namespace detail {
int64_t comm_set_max_count(int64_t max_count) {
  TSP_CHECK(max_count >= 1 && max_count <= INT_MAX, "max count {} must be in [1, INT_MAX]", max_count);
  return std::exchange(g_max_count, max_count);
}
}  // namespace detail

void Communicator::init(int* argc, char*** argv) {
  int init = 0;
  MPI_Initialized(&init);
  if (init) return;
  // machine.md: OpenMPI mallocs and frees large temporaries in every reduction; served by mmap, each call
  // would page-fault them in again. Keep big blocks on the heap and never return them to the OS.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  int provided = 0;
  // The main thread makes every call of the computation; the communication watchdog (comm/watchdog.h)
  // talks to the other ranks' watchdogs from its own thread while the main thread may be blocked in a call,
  // which needs MPI_THREAD_MULTIPLE. TSP_MPI_THREADS=funneled asks for the old level (for the benchmark
  // that shows the watchdog costs nothing: bench/watchdog_overhead.sh).
  const char* level = std::getenv("TSP_MPI_THREADS");
  const bool funneled = level && std::string_view(level) == "funneled";
  // Errors in MPI_Init_thread itself are fatal under the default handler, which is what we want there.
  MPI_Init_thread(argc, argv, funneled ? MPI_THREAD_FUNNELED : MPI_THREAD_MULTIPLE, &provided);
  g_thread_level = provided;
  mpi_check(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN), "MPI_Comm_set_errhandler");
}

void Communicator::finalize() {
  if (mpi_usable()) MPI_Finalize();
}

bool Communicator::initialized() {
  return mpi_usable();
}

bool Communicator::thread_multiple() {
  return g_thread_level >= MPI_THREAD_MULTIPLE;
}

void Communicator::abort(const std::string& message, int code) {
  const int r = world_rank();
  if (r >= 0)
    std::fprintf(stderr, "[rank %d] error: %s\n", r, message.c_str());
  else
    std::fprintf(stderr, "[rank ?] error: %s\n", message.c_str());
  std::fflush(stderr);
  if (r >= 0) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

Communicator Communicator::world() {
  TSP_CHECK(mpi_usable(), "Communicator::world() needs Communicator::init() first");
  return Communicator(MPI_COMM_WORLD, false);
}

Communicator::Communicator(MPI_Comm comm, bool owned)
    : comm_(comm), owned_(owned), acct_(std::make_shared<Accounting>()) {
  TSP_CHECK(comm != MPI_COMM_NULL, "Communicator needs a valid MPI communicator, got MPI_COMM_NULL");
  mpi_check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
  mpi_check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
}

Communicator::~Communicator() {
  // Communicators destroyed after MPI_Finalize (globals, leaked objects) were already released by MPI.
  if (owned_ && comm_ != MPI_COMM_NULL && mpi_usable()) MPI_Comm_free(&comm_);
}

Communicator::Communicator(Communicator&& o) noexcept
    : comm_(std::exchange(o.comm_, MPI_COMM_NULL)),
      owned_(std::exchange(o.owned_, false)),
      rank_(o.rank_),
      size_(o.size_),
      acct_(std::move(o.acct_)) {}

Communicator& Communicator::operator=(Communicator&& o) noexcept {
  if (this != &o) {
    if (owned_ && comm_ != MPI_COMM_NULL && mpi_usable()) MPI_Comm_free(&comm_);
    comm_ = std::exchange(o.comm_, MPI_COMM_NULL);
    owned_ = std::exchange(o.owned_, false);
    rank_ = o.rank_;
    size_ = o.size_;
    acct_ = std::move(o.acct_);
  }
  return *this;
}

Communicator Communicator::split(int color, int key) const {
  TSP_CHECK(color >= 0, "Communicator::split color must be >= 0, got {}", color);
  MPI_Comm sub = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split(comm_, color, key, &sub), "MPI_Comm_split");
  Communicator c(sub, true);
  c.set_phase(phase());
  return c;
}

Communicator Communicator::split_shared(int color, int key) const {
  Communicator c = split(color, key);
  c.acct_ = acct_;
  return c;
}

CommCounter& Communicator::counter(std::string_view label, const char* op) {
  return find_counter(acct_->stats, acct_->phase, label, op);
}

CommCounter& Communicator::account(std::string_view label, const char* op, int64_t payload_bytes,
                                   int64_t recv_bytes) {
  fault_point(acct_->phase, label);
  CommCounter& c = counter(label, op);
  c.calls += 1;
  c.payload_bytes += payload_bytes;
  c.recv_bytes += recv_bytes;
  return c;
}

void Communicator::charge(const std::string& phase, std::string_view label, const char* op, double t0_us) {
  const double dt_us = trace_now_us() - t0_us;
  find_counter(acct_->stats, phase, label, op).seconds += dt_us * 1e-6;
  if (trace_enabled()) trace_record(label, "comm", t0_us, dt_us);
}

void Communicator::barrier() {
  fault_point(acct_->phase, "barrier");
  CommWatchScope watch("barrier", acct_->phase);
  mpi_check(MPI_Barrier(comm_), "MPI_Barrier");
}

template <class T>
void Communicator::broadcast(std::string_view label, T* buf, int64_t n, int root) {
  TSP_CHECK(root >= 0 && root < size_, "broadcast '{}': root {} is not a rank of a communicator of size {}",
            label, root, size_);
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  account(label, "broadcast", bytes, size_ > 1 && rank_ != root ? bytes : 0);
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  if (size_ > 1) {
    Contiguous c(mpi_type<T>(), n, sizeof(T));
    check_call(MPI_Bcast(buf, c.count, c.type, root, comm_), "MPI_Bcast", label);
  }
  charge(acct_->phase, label, "broadcast", t0);
}

template <class T>
void Communicator::all_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank) {
  check_count(label, n_per_rank);
  const int64_t bytes = n_per_rank * static_cast<int64_t>(sizeof(T));
  account(label, "all_gather", bytes, (size_ - 1) * bytes);
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  if (size_ == 1) {
    copy_elems(send, recv, n_per_rank);
  } else {
    Contiguous c(mpi_type<T>(), n_per_rank, sizeof(T));
    const void* s = send == recv + rank_ * n_per_rank ? MPI_IN_PLACE : send;
    check_call(MPI_Allgather(s, c.count, c.type, recv, c.count, c.type, comm_), "MPI_Allgather", label);
  }
  charge(acct_->phase, label, "all_gather", t0);
}

template <class T>
void Communicator::reduce_scatter(std::string_view label, const T* send, T* recv, int64_t n_per_rank) {
  check_count(label, n_per_rank);
  const int64_t bytes = n_per_rank * static_cast<int64_t>(sizeof(T));
  account(label, "reduce_scatter", bytes, (size_ - 1) * bytes);
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  if (size_ == 1) {
    copy_elems(send, recv, n_per_rank);
  } else if (n_per_rank <= g_max_count) {
    check_call(
        MPI_Reduce_scatter_block(send, recv, static_cast<int>(n_per_rank), mpi_type<T>(), sum_op<T>(), comm_),
        "MPI_Reduce_scatter_block", label);
  } else {
    // Block j's chunks are not contiguous across blocks, so each chunk of each block is reduced to its owner.
    for_each_chunk(n_per_rank, [&](int64_t off, int cnt) {
      for (int j = 0; j < size_; ++j)
        check_call(MPI_Reduce(send + j * n_per_rank + off, j == rank_ ? recv + off : nullptr, cnt,
                              mpi_type<T>(), sum_op<T>(), j, comm_),
                   "MPI_Reduce", label);
    });
  }
  charge(acct_->phase, label, "reduce_scatter", t0);
}

template <class T>
void Communicator::reduce(std::string_view label, const T* send, T* recv, int64_t n, int root) {
  TSP_CHECK(root >= 0 && root < size_, "reduce '{}': root {} is not a rank of a communicator of size {}",
            label, root, size_);
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  account(label, "reduce", bytes, size_ > 1 && rank_ == root ? (size_ - 1) * bytes : 0);
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  if (size_ == 1) {
    copy_elems(send, recv, n);
  } else {
    const bool is_root = rank_ == root, in_place = is_root && send == recv;
    for_each_chunk(n, [&](int64_t off, int cnt) {
      const void* s = in_place ? MPI_IN_PLACE : static_cast<const void*>(send + off);
      check_call(MPI_Reduce(s, is_root ? recv + off : nullptr, cnt, mpi_type<T>(), sum_op<T>(), root, comm_),
                 "MPI_Reduce", label);
    });
  }
  charge(acct_->phase, label, "reduce", t0);
}

template <class T>
void Communicator::all_reduce(std::string_view label, T* buf, int64_t n) {
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  // Ring all-reduce: P-1 steps of n/P in the reduce-scatter, P-1 in the all-gather; floor to whole bytes.
  account(label, "all_reduce", bytes, 2 * (size_ - 1) * bytes / size_);
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  if (size_ > 1) {
    for_each_chunk(n, [&](int64_t off, int cnt) {
      check_call(MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, mpi_type<T>(), sum_op<T>(), comm_),
                 "MPI_Allreduce", label);
    });
  }
  charge(acct_->phase, label, "all_reduce", t0);
}

template <class T>
void Communicator::send_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv,
                             int64_t n_recv, int source) {
  check_count(label, n_send);
  check_count(label, n_recv);
  account(label, "send_recv", n_send * static_cast<int64_t>(sizeof(T)),
          n_recv * static_cast<int64_t>(sizeof(T)));
  const double t0 = trace_now_us();
  CommWatchScope watch(label, acct_->phase);
  Contiguous cs(mpi_type<T>(), n_send, sizeof(T)), cr(mpi_type<T>(), n_recv, sizeof(T));
  check_call(
      MPI_Sendrecv(send, cs.count, cs.type, n_send > 0 ? dest : MPI_PROC_NULL, kSendRecvTag, recv, cr.count,
                   cr.type, n_recv > 0 ? source : MPI_PROC_NULL, kSendRecvTag, comm_, MPI_STATUS_IGNORE),
      "MPI_Sendrecv", label);
  charge(acct_->phase, label, "send_recv", t0);
}

// Displacements of consecutive blocks, as 32-bit MPI counts (checked).
static std::vector<int> mpi_counts(const std::vector<int64_t>& counts, std::string_view label, int size,
                                   std::vector<int>* displs) {
  TSP_CHECK(int(counts.size()) == size, "comm call '{}': {} counts for a communicator of size {}", label,
            counts.size(), size);
  std::vector<int> c(counts.size());
  int64_t off = 0;
  if (displs) displs->resize(counts.size());
  for (size_t j = 0; j < counts.size(); ++j) {
    check_count(label, counts[j]);
    TSP_CHECK(counts[j] <= INT_MAX && off <= INT_MAX, "comm call '{}': {} elements exceed one MPI count",
              label, off + counts[j]);
    c[j] = static_cast<int>(counts[j]);
    if (displs) (*displs)[j] = static_cast<int>(off);
    off += counts[j];
  }
  return c;
}

template <class T>
void Communicator::all_gather_v(std::string_view label, const T* send, T* recv,
                                const std::vector<int64_t>& counts) {
  std::vector<int> displs;
  const std::vector<int> c = mpi_counts(counts, label, size_, &displs);
  int64_t others = 0;
  for (int j = 0; j < size_; ++j)
    if (j != rank_) others += counts[size_t(j)];
  const int64_t elem = static_cast<int64_t>(sizeof(T));
  account(label, "all_gather_v", counts[size_t(rank_)] * elem, others * elem);
  const double t0 = trace_now_us();
  if (size_ == 1) {
    copy_elems(send, recv, counts[0]);
  } else {
    check_call(MPI_Allgatherv(send, c[size_t(rank_)], mpi_type<T>(), recv, c.data(), displs.data(),
                              mpi_type<T>(), comm_),
               "MPI_Allgatherv", label);
  }
  charge(acct_->phase, label, "all_gather_v", t0);
}

template <class T>
void Communicator::all_to_all_v(std::string_view label, const T* send,
                                const std::vector<int64_t>& send_counts, T* recv,
                                const std::vector<int64_t>& recv_counts) {
  std::vector<int> sd, rd;
  const std::vector<int> sc = mpi_counts(send_counts, label, size_, &sd);
  const std::vector<int> rc = mpi_counts(recv_counts, label, size_, &rd);
  int64_t sent = 0, received = 0;
  for (int j = 0; j < size_; ++j)
    if (j != rank_) sent += send_counts[size_t(j)], received += recv_counts[size_t(j)];
  const int64_t elem = static_cast<int64_t>(sizeof(T));
  account(label, "all_to_all_v", sent * elem, received * elem);
  const double t0 = trace_now_us();
  if (size_ == 1) {
    TSP_CHECK(send_counts[0] == recv_counts[0], "all_to_all_v '{}': sends {} to itself but expects {}", label,
              send_counts[0], recv_counts[0]);
    copy_elems(send, recv, send_counts[0]);
  } else {
    check_call(MPI_Alltoallv(send, sc.data(), sd.data(), mpi_type<T>(), recv, rc.data(), rd.data(),
                             mpi_type<T>(), comm_),
               "MPI_Alltoallv", label);
  }
  charge(acct_->phase, label, "all_to_all_v", t0);
}

template <class T>
CommRequest Communicator::ibroadcast(std::string_view label, T* buf, int64_t n, int root) {
  TSP_CHECK(root >= 0 && root < size_, "ibroadcast '{}': root {} is not a rank of a communicator of size {}",
            label, root, size_);
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  account(label, "broadcast", bytes, size_ > 1 && rank_ != root ? bytes : 0);
  CommRequest r = pending(label, "broadcast");
  if (size_ > 1) {
    Contiguous c(mpi_type<T>(), n, sizeof(T));
    MPI_Request q;
    check_call(MPI_Ibcast(buf, c.count, c.type, root, comm_, &q), "MPI_Ibcast", label);
    r.reqs_.push_back(q);
  }
  return posted(std::move(r));
}

template <class T>
CommRequest Communicator::iall_gather(std::string_view label, const T* send, T* recv, int64_t n_per_rank) {
  check_count(label, n_per_rank);
  const int64_t bytes = n_per_rank * static_cast<int64_t>(sizeof(T));
  account(label, "all_gather", bytes, (size_ - 1) * bytes);
  CommRequest r = pending(label, "all_gather");
  if (size_ == 1) {
    copy_elems(send, recv, n_per_rank);
  } else {
    Contiguous c(mpi_type<T>(), n_per_rank, sizeof(T));
    const void* s = send == recv + rank_ * n_per_rank ? MPI_IN_PLACE : send;
    MPI_Request q;
    check_call(MPI_Iallgather(s, c.count, c.type, recv, c.count, c.type, comm_, &q), "MPI_Iallgather", label);
    r.reqs_.push_back(q);
  }
  return posted(std::move(r));
}

template <class T>
CommRequest Communicator::isend_recv(std::string_view label, const T* send, int64_t n_send, int dest, T* recv,
                                     int64_t n_recv, int source) {
  check_count(label, n_send);
  check_count(label, n_recv);
  account(label, "send_recv", n_send * static_cast<int64_t>(sizeof(T)),
          n_recv * static_cast<int64_t>(sizeof(T)));
  CommRequest r = pending(label, "send_recv");
  Contiguous cs(mpi_type<T>(), n_send, sizeof(T)), cr(mpi_type<T>(), n_recv, sizeof(T));
  // The receive is posted first so that the matching send never waits in an unexpected-message queue.
  if (n_recv > 0) {
    MPI_Request q;
    check_call(MPI_Irecv(recv, cr.count, cr.type, source, kSendRecvTag, comm_, &q), "MPI_Irecv", label);
    r.reqs_.push_back(q);
  }
  if (n_send > 0) {
    MPI_Request q;
    const int rc = MPI_Isend(send, cs.count, cs.type, dest, kSendRecvTag, comm_, &q);
    if (rc != MPI_SUCCESS) {
      // Do not leave the posted receive pointing at the caller's buffer.
      for (MPI_Request& p : r.reqs_) {
        MPI_Cancel(&p);
        MPI_Request_free(&p);
      }
      check_call(rc, "MPI_Isend", label);
    }
    r.reqs_.push_back(q);
  }
  return posted(std::move(r));
}

// Posts one non-blocking operation of `op` under `label`; accounting happens in the caller.
CommRequest Communicator::pending(std::string_view label, const char* op) const {
  CommRequest r;
  r.pending_ = true;
  r.phase_ = acct_->phase;
  r.label_ = label;
  r.op_ = op;
  return r;
}

template <class T>
CommRequest Communicator::ireduce_scatter(std::string_view label, const T* send, T* recv,
                                          int64_t n_per_rank) {
  check_count(label, n_per_rank);
  const int64_t bytes = n_per_rank * static_cast<int64_t>(sizeof(T));
  account(label, "reduce_scatter", bytes, (size_ - 1) * bytes);
  CommRequest r = pending(label, "reduce_scatter");
  if (size_ == 1) {
    copy_elems(send, recv, n_per_rank);
  } else if (n_per_rank <= g_max_count) {
    MPI_Request q;
    check_call(MPI_Ireduce_scatter_block(send, recv, static_cast<int>(n_per_rank), mpi_type<T>(), sum_op<T>(),
                                         comm_, &q),
               "MPI_Ireduce_scatter_block", label);
    r.reqs_.push_back(q);
  } else {
    // As in the blocking version: each chunk of each block reduced to its owner, all in flight together.
    for_each_chunk(n_per_rank, [&](int64_t off, int cnt) {
      for (int j = 0; j < size_; ++j) {
        MPI_Request q;
        check_call(MPI_Ireduce(send + j * n_per_rank + off, j == rank_ ? recv + off : nullptr, cnt,
                               mpi_type<T>(), sum_op<T>(), j, comm_, &q),
                   "MPI_Ireduce", label);
        r.reqs_.push_back(q);
      }
    });
  }
  return posted(std::move(r));
}

template <class T>
CommRequest Communicator::ireduce(std::string_view label, const T* send, T* recv, int64_t n, int root) {
  TSP_CHECK(root >= 0 && root < size_, "ireduce '{}': root {} is not a rank of a communicator of size {}",
            label, root, size_);
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  account(label, "reduce", bytes, size_ > 1 && rank_ == root ? (size_ - 1) * bytes : 0);
  CommRequest r = pending(label, "reduce");
  if (size_ == 1) {
    copy_elems(send, recv, n);
  } else {
    const bool is_root = rank_ == root, in_place = is_root && send == recv;
    for_each_chunk(n, [&](int64_t off, int cnt) {
      const void* s = in_place ? MPI_IN_PLACE : static_cast<const void*>(send + off);
      MPI_Request q;
      check_call(
          MPI_Ireduce(s, is_root ? recv + off : nullptr, cnt, mpi_type<T>(), sum_op<T>(), root, comm_, &q),
          "MPI_Ireduce", label);
      r.reqs_.push_back(q);
    });
  }
  return posted(std::move(r));
}

template <class T>
CommRequest Communicator::iall_reduce(std::string_view label, T* buf, int64_t n) {
  check_count(label, n);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  account(label, "all_reduce", bytes, 2 * (size_ - 1) * bytes / size_);
  CommRequest r = pending(label, "all_reduce");
  if (size_ > 1) {
    for_each_chunk(n, [&](int64_t off, int cnt) {
      MPI_Request q;
      check_call(MPI_Iallreduce(MPI_IN_PLACE, buf + off, cnt, mpi_type<T>(), sum_op<T>(), comm_, &q),
                 "MPI_Iallreduce", label);
      r.reqs_.push_back(q);
    });
  }
  return posted(std::move(r));
}

void Communicator::set_overlap(bool on) {
  g_overlap.store(on, std::memory_order_relaxed);
}

bool Communicator::overlap() {
  return g_overlap.load(std::memory_order_relaxed);
}

// Without overlap the transfer is completed (and its time charged as exposed) before the caller computes;
// the caller's later wait() returns at once. The bytes, calls and results are those of the overlapped run.
CommRequest Communicator::posted(CommRequest r) {
  if (!overlap()) wait(r);
  return r;
}

void Communicator::wait(CommRequest& r) {
  if (!r.active()) return;
  const double t0 = trace_now_us();
  CommWatchScope watch(r.label_, r.phase_);
  r.pending_ = false;
  if (!r.reqs_.empty()) {
    const int rc = MPI_Waitall(static_cast<int>(r.reqs_.size()), r.reqs_.data(), MPI_STATUSES_IGNORE);
    r.reqs_.clear();
    check_call(rc, "MPI_Waitall", r.label_);
  }
  charge(r.phase_, r.label_, r.op_, t0);
}

#define TSP_COMM_INSTANTIATE(T)                                                                             \
  template void Communicator::broadcast<T>(std::string_view, T*, int64_t, int);                             \
  template void Communicator::all_gather<T>(std::string_view, const T*, T*, int64_t);                       \
  template void Communicator::reduce_scatter<T>(std::string_view, const T*, T*, int64_t);                   \
  template void Communicator::reduce<T>(std::string_view, const T*, T*, int64_t, int);                      \
  template void Communicator::all_reduce<T>(std::string_view, T*, int64_t);                                 \
  template void Communicator::send_recv<T>(std::string_view, const T*, int64_t, int, T*, int64_t, int);     \
  template void Communicator::all_gather_v<T>(std::string_view, const T*, T*, const std::vector<int64_t>&); \
  template void Communicator::all_to_all_v<T>(std::string_view, const T*, const std::vector<int64_t>&, T*,  \
                                              const std::vector<int64_t>&);                                 \
  template CommRequest Communicator::ibroadcast<T>(std::string_view, T*, int64_t, int);                     \
  template CommRequest Communicator::iall_gather<T>(std::string_view, const T*, T*, int64_t);               \
  template CommRequest Communicator::isend_recv<T>(std::string_view, const T*, int64_t, int, T*, int64_t,   \
                                                   int);                                                    \
  template CommRequest Communicator::ireduce_scatter<T>(std::string_view, const T*, T*, int64_t);           \
  template CommRequest Communicator::ireduce<T>(std::string_view, const T*, T*, int64_t, int);              \
  template CommRequest Communicator::iall_reduce<T>(std::string_view, T*, int64_t);

TSP_COMM_INSTANTIATE(float)
TSP_COMM_INSTANTIATE(double)
TSP_COMM_INSTANTIATE(int32_t)
TSP_COMM_INSTANTIATE(int64_t)

TSP_COMM_INSTANTIATE(uint16_t)  // bf16 bit patterns: moved, and summed by bf16_sum

template void Communicator::broadcast<char>(std::string_view, char*, int64_t, int);

std::string Communicator::broadcast_text(std::string_view label, const std::string& text, int root) {
  int64_t n = rank_ == root ? int64_t(text.size()) : 0;
  broadcast(label, &n, 1, root);
  std::string out = rank_ == root ? text : std::string(size_t(n), '\0');
  broadcast(label, out.data(), n, root);
  return out;
}

#undef TSP_COMM_INSTANTIATE

}  // namespace tsp

// mpi-ranks: 1 2 3 4
// The communicator: every collective (blocking and non-blocking) against exact expected values for each
// element type, the paths for counts above the per-call MPI limit, 2-D meshes from split(), and the
// accounting that the communication-volume formulas of tsp-spec.md §9 are checked against.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "comm/comm_report.h"
#include "comm/communicator.h"
#include "core/check.h"
#include "core/trace.h"

namespace tsp {
namespace {

// Small integers: exact in every element type, and so are their sums over 4 ranks.
template <class T>
T value(int rank, int64_t i) {
  return static_cast<T>(rank * 1000 + i % 251 + 1);
}

template <class T>
T sum_over_ranks(int P, int64_t i) {
  T s = 0;
  for (int q = 0; q < P; ++q) s += value<T>(q, i);
  return s;
}

template <class T>
std::vector<T> values(int rank, int64_t n) {
  std::vector<T> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = value<T>(rank, i);
  return v;
}

// Lowers the per-call element limit so that the derived-datatype and chunked paths written for more than
// INT_MAX elements run on small buffers.
class MaxCountGuard {
 public:
  explicit MaxCountGuard(int64_t max_count) : previous_(detail::comm_set_max_count(max_count)) {}
  ~MaxCountGuard() { detail::comm_set_max_count(previous_); }

 private:
  int64_t previous_;
};

template <class T>
void check_broadcast(Communicator& c, int64_t n) {
  for (int root = 0; root < c.size(); ++root) {
    std::vector<T> buf = c.rank() == root ? values<T>(root, n) : std::vector<T>(n, T(-1));
    c.broadcast<T>("bcast", buf.data(), n, root);
    ASSERT_EQ(buf, values<T>(root, n)) << "root " << root;
  }
}

template <class T>
void check_all_gather(Communicator& c, int64_t n) {
  const int P = c.size();
  std::vector<T> expected;
  for (int q = 0; q < P; ++q) {
    std::vector<T> v = values<T>(q, n);
    expected.insert(expected.end(), v.begin(), v.end());
  }
  std::vector<T> send = values<T>(c.rank(), n), recv(P * n, T(-1));
  c.all_gather<T>("allgather", send.data(), recv.data(), n);
  ASSERT_EQ(recv, expected);
  // In place: this rank's block already sits in the output.
  std::vector<T> inplace(P * n, T(-1));
  std::copy(send.begin(), send.end(), inplace.begin() + c.rank() * n);
  c.all_gather<T>("allgather_inplace", inplace.data() + c.rank() * n, inplace.data(), n);
  ASSERT_EQ(inplace, expected);
}

template <class T>
void check_reduce_scatter(Communicator& c, int64_t n) {
  const int P = c.size(), r = c.rank();
  std::vector<T> send = values<T>(r, P * n), recv(n, T(-1)), expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = sum_over_ranks<T>(P, r * n + i);
  c.reduce_scatter<T>("reducescatter", send.data(), recv.data(), n);
  ASSERT_EQ(recv, expected);
}

template <class T>
void check_reduce(Communicator& c, int64_t n) {
  const int P = c.size(), r = c.rank();
  std::vector<T> expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = sum_over_ranks<T>(P, i);
  for (int root = 0; root < P; ++root) {
    std::vector<T> send = values<T>(r, n), recv(n, T(-1));
    c.reduce<T>("reduce", send.data(), recv.data(), n, root);
    if (r == root) {
      ASSERT_EQ(recv, expected) << "root " << root;
    }
    ASSERT_EQ(send, values<T>(r, n)) << "the input must not change";
    // In place on the root, no output buffer elsewhere.
    std::vector<T> buf = values<T>(r, n);
    c.reduce<T>("reduce_inplace", buf.data(), r == root ? buf.data() : nullptr, n, root);
    if (r == root) {
      ASSERT_EQ(buf, expected) << "in place, root " << root;
    }
  }
}

template <class T>
void check_all_reduce(Communicator& c, int64_t n) {
  std::vector<T> buf = values<T>(c.rank(), n), expected(n);
  for (int64_t i = 0; i < n; ++i) expected[i] = sum_over_ranks<T>(c.size(), i);
  c.all_reduce<T>("allreduce", buf.data(), n);
  ASSERT_EQ(buf, expected);
}

template <class T>
void check_send_recv(Communicator& c, int64_t n) {
  const int P = c.size(), r = c.rank(), right = (r + 1) % P, left = (r + P - 1) % P;
  // A ring with a different count per sender, so that a send/receive count mix-up cannot pass.
  std::vector<T> send = values<T>(r, n + r), recv(n + left, T(-1));
  c.send_recv<T>("ring", send.data(), n + r, right, recv.data(), n + left, left);
  ASSERT_EQ(recv, values<T>(left, n + left));
  // A chain: the first rank only sends, the last only receives; a zero count means no message.
  std::vector<T> chain_recv(n, T(-1));
  const bool sends = r + 1 < P, receives = r > 0;
  c.send_recv<T>("chain", send.data(), sends ? n : 0, sends ? r + 1 : MPI_PROC_NULL, chain_recv.data(),
                 receives ? n : 0, receives ? r - 1 : -1);
  if (receives) {
    ASSERT_EQ(chain_recv, values<T>(r - 1, n));
  }
}

template <class T>
void check_nonblocking(Communicator& c, int64_t n) {
  const int P = c.size(), r = c.rank(), right = (r + 1) % P, left = (r + P - 1) % P;
  const int root = P - 1;
  std::vector<T> bc = r == root ? values<T>(root, n) : std::vector<T>(n, T(-1));
  std::vector<T> ag_send = values<T>(r, n), ag_recv(P * n, T(-1));
  CommRequest q_bc = c.ibroadcast<T>("ibcast", bc.data(), n, root);
  CommRequest q_ag = c.iall_gather<T>("iallgather", ag_send.data(), ag_recv.data(), n);
  EXPECT_TRUE(q_bc.active());
  EXPECT_TRUE(q_ag.active());
  // Two exchanges in flight on the same pair of ranks: they must match in posting order.
  std::vector<T> first = values<T>(r, n), second = values<T>(r + 10, n);
  std::vector<T> got_first(n, T(-1)), got_second(n, T(-1));
  CommRequest q1 = c.isend_recv<T>("iring", first.data(), n, right, got_first.data(), n, left);
  CommRequest q2 = c.isend_recv<T>("iring", second.data(), n, right, got_second.data(), n, left);
  c.wait(q2);
  c.wait(q_ag);
  c.wait(q1);
  c.wait(q_bc);
  EXPECT_FALSE(q_bc.active());
  c.wait(q_bc);  // waiting an inactive request is a no-op
  ASSERT_EQ(bc, values<T>(root, n));
  std::vector<T> expected_ag;
  for (int q = 0; q < P; ++q) {
    std::vector<T> v = values<T>(q, n);
    expected_ag.insert(expected_ag.end(), v.begin(), v.end());
  }
  ASSERT_EQ(ag_recv, expected_ag);
  ASSERT_EQ(got_first, values<T>(left, n));
  ASSERT_EQ(got_second, values<T>(left + 10, n));
}

// The non-blocking reductions, all in flight together, give what the blocking ones give.
template <class T>
void check_nonblocking_reductions(Communicator& c, int64_t n) {
  const int P = c.size(), r = c.rank(), root = P / 2;
  std::vector<T> rs_send = values<T>(r, P * n), rs_recv(n, T(-1)), rs_expected(n);
  for (int64_t i = 0; i < n; ++i) rs_expected[i] = sum_over_ranks<T>(P, r * n + i);
  std::vector<T> red_send = values<T>(r, n), red_recv(n, T(-1)), sum(n);
  for (int64_t i = 0; i < n; ++i) sum[i] = sum_over_ranks<T>(P, i);
  std::vector<T> ar = values<T>(r, n);
  std::vector<T> inplace = values<T>(r, n);
  CommRequest q_rs = c.ireduce_scatter<T>("ireducescatter", rs_send.data(), rs_recv.data(), n);
  CommRequest q_red =
      c.ireduce<T>("ireduce", red_send.data(), r == root ? red_recv.data() : nullptr, n, root);
  CommRequest q_in =
      c.ireduce<T>("ireduce_inplace", inplace.data(), r == root ? inplace.data() : nullptr, n, root);
  CommRequest q_ar = c.iall_reduce<T>("iallreduce", ar.data(), n);
  EXPECT_TRUE(q_rs.active() && q_red.active() && q_in.active() && q_ar.active());
  c.wait(q_ar);
  c.wait(q_in);
  c.wait(q_rs);
  c.wait(q_red);
  ASSERT_EQ(rs_recv, rs_expected);
  ASSERT_EQ(ar, sum);
  if (r == root) {
    ASSERT_EQ(red_recv, sum);
    ASSERT_EQ(inplace, sum);
  }
}

template <class T>
void check_all(Communicator& c, int64_t n) {
  SCOPED_TRACE(fmt::format("n = {}, P = {}", n, c.size()));
  check_broadcast<T>(c, n);
  check_all_gather<T>(c, n);
  check_reduce_scatter<T>(c, n);
  check_reduce<T>(c, n);
  check_all_reduce<T>(c, n);
  check_send_recv<T>(c, n);
  check_nonblocking<T>(c, n);
  check_nonblocking_reductions<T>(c, n);
}

template <class T>
class CommTyped : public testing::Test {};
using ElementTypes = testing::Types<float, double, int32_t, int64_t>;
TYPED_TEST_SUITE(CommTyped, ElementTypes);

TYPED_TEST(CommTyped, CollectivesGiveExactValues) {
  Communicator w = Communicator::world();
  for (int64_t n : {int64_t{1}, int64_t{37}, int64_t{1000}}) check_all<TypeParam>(w, n);
}

TYPED_TEST(CommTyped, EmptyBuffers) {
  Communicator w = Communicator::world();
  check_all<TypeParam>(w, 0);
}

// Counts above the per-call limit: a multiple of the limit, one with a remainder, one below it, and the
// extreme limit of one element per MPI call.
TYPED_TEST(CommTyped, CountsAboveTheMpiLimitAreNotTruncated) {
  Communicator w = Communicator::world();
  {
    MaxCountGuard guard(5);
    for (int64_t n : {int64_t{10}, int64_t{13}, int64_t{4}}) check_all<TypeParam>(w, n);
  }
  {
    MaxCountGuard guard(1);
    check_all<TypeParam>(w, 3);
  }
}

TEST(Comm, SplitIntoA2DMesh) {
  Communicator w = Communicator::world();
  const int P = w.size(), r = w.rank();
  if (P == 4) {
    // Rank r sits at (row r/2, column r%2) of a 2x2 mesh.
    Communicator row = w.split(r / 2, r % 2), col = w.split(r % 2, r / 2);
    ASSERT_EQ(row.size(), 2);
    ASSERT_EQ(col.size(), 2);
    EXPECT_EQ(row.rank(), r % 2);
    EXPECT_EQ(col.rank(), r / 2);
    int32_t me = r;
    std::vector<int32_t> row_members(2), col_members(2);
    row.all_gather<int32_t>("row_members", &me, row_members.data(), 1);
    col.all_gather<int32_t>("col_members", &me, col_members.data(), 1);
    EXPECT_EQ(row_members, (std::vector<int32_t>{2 * (r / 2), 2 * (r / 2) + 1}));
    EXPECT_EQ(col_members, (std::vector<int32_t>{r % 2, r % 2 + 2}));
    double row_sum = r, col_sum = r;
    row.all_reduce<double>("row_sum", &row_sum, 1);
    col.all_reduce<double>("col_sum", &col_sum, 1);
    EXPECT_EQ(row_sum, r / 2 == 0 ? 0 + 1 : 2 + 3);
    EXPECT_EQ(col_sum, r % 2 == 0 ? 0 + 2 : 1 + 3);
    // Every communicator keeps its own counters.
    EXPECT_EQ(row.stats().at("forward").count("col_sum"), 0u);
    EXPECT_EQ(col.stats().at("forward").count("row_sum"), 0u);
    EXPECT_EQ(row.stats().at("forward").at("row_sum").calls, 1);
    EXPECT_TRUE(w.stats().empty());
    check_all<float>(row, 17);
    check_all<int64_t>(col, 17);
  }
  // Any P: ranks of equal parity, ordered by world rank.
  Communicator parity = w.split(r % 2, r);
  EXPECT_EQ(parity.size(), r % 2 == 0 ? (P + 1) / 2 : P / 2);
  EXPECT_EQ(parity.rank(), r / 2);
  int64_t sum = r, expected = 0;
  for (int q = r % 2; q < P; q += 2) expected += q;
  parity.all_reduce<int64_t>("parity_sum", &sum, 1);
  EXPECT_EQ(sum, expected);
  check_all<double>(parity, 9);
  // Singletons: every collective is a local copy.
  Communicator alone = w.split(r, 0);
  ASSERT_EQ(alone.size(), 1);
  check_all<int32_t>(alone, 9);
}

TEST(Comm, MovesKeepTheCommunicatorAndItsCounters) {
  Communicator w = Communicator::world();
  Communicator a = w.split(0, w.rank());
  float x = 1;
  a.all_reduce<float>("before_move", &x, 1);
  const CommStats* stats = &a.stats();
  Communicator b = std::move(a);
  EXPECT_EQ(&b.stats(), stats);
  x = 1;
  b.all_reduce<float>("after_move", &x, 1);
  EXPECT_EQ(x, w.size());
  // Move assignment frees the communicator it replaces and takes the other one's counters.
  Communicator c = w.split(1, -w.rank());
  EXPECT_EQ(c.rank(), w.size() - 1 - w.rank());
  c = std::move(b);
  EXPECT_EQ(c.rank(), w.rank());
  EXPECT_EQ(c.stats().at("forward").at("before_move").calls, 1);
  EXPECT_EQ(c.stats().at("forward").at("after_move").calls, 1);
  std::vector<Communicator> many;
  for (int i = 0; i < 8; ++i) many.push_back(w.split(i % 2, w.rank()));
  for (Communicator& m : many) check_all_reduce<int32_t>(m, 3);
}

void expect_counter(const CommStats& s, const std::string& phase, const std::string& label,
                    const std::string& op, int64_t calls, int64_t payload_bytes, int64_t recv_bytes) {
  SCOPED_TRACE(phase + "/" + label);
  ASSERT_TRUE(s.count(phase) && s.at(phase).count(label));
  const CommCounter& c = s.at(phase).at(label);
  EXPECT_EQ(c.op, op);
  EXPECT_EQ(c.calls, calls);
  EXPECT_EQ(c.payload_bytes, payload_bytes);
  EXPECT_EQ(c.recv_bytes, recv_bytes);
  EXPECT_GE(c.seconds, 0.0);
}

TEST(Comm, AccountingMatchesTheDocumentedFormulas) {
  Communicator w = Communicator::world();
  const int P = w.size(), r = w.rank(), right = (r + 1) % P, left = (r + P - 1) % P;
  std::vector<float> f(64 * P);
  std::vector<double> d(64 * P), d2(64 * P);
  std::vector<int32_t> i32(64 * P), i32b(64 * P);
  std::vector<int64_t> i64(64 * P), i64b(64 * P);

  w.set_phase("forward");
  w.broadcast<float>("bc", f.data(), 10, 0);
  w.broadcast<float>("bc", f.data(), 10, 0);
  w.all_gather<double>("ag", d.data(), d2.data(), 6);
  w.reduce_scatter<double>("rs", d.data(), d2.data(), 8);
  w.reduce<int64_t>("rd", i64.data(), i64b.data(), 5, P - 1);
  w.all_reduce<float>("ar", f.data(), 7);
  w.send_recv<int32_t>("sr", i32.data(), r + 1, right, i32b.data(), left + 1, left);
  w.set_phase("backward");
  CommRequest q1 = w.ibroadcast<double>("bc", d.data(), 9, P - 1);
  CommRequest q2 = w.iall_gather<int32_t>("iag", i32.data(), i32b.data(), 4);
  CommRequest q3 = w.isend_recv<int64_t>("isr", i64.data(), 2, right, i64b.data(), 2, left);
  w.set_phase("optimizer");  // a request is charged to the phase it was posted in
  w.wait(q3);
  w.wait(q2);
  w.wait(q1);

  const CommStats& s = w.stats();
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s.at("forward").size(), 6u);
  EXPECT_EQ(s.at("backward").size(), 3u);
  EXPECT_EQ(s.at("backward").count("ag"), 0u);
  // all_reduce of 28 bytes receives floor(2·(P-1)·28/P) bytes: 0, 28, 37 (112/3 rounded down), 42.
  const int64_t ar_recv[] = {0, 28, 37, 42};
  expect_counter(s, "forward", "bc", "broadcast", 2, 80, r != 0 ? 80 : 0);
  expect_counter(s, "forward", "ag", "all_gather", 1, 48, (P - 1) * 48);
  expect_counter(s, "forward", "rs", "reduce_scatter", 1, 64, (P - 1) * 64);
  expect_counter(s, "forward", "rd", "reduce", 1, 40, r == P - 1 ? (P - 1) * 40 : 0);
  expect_counter(s, "forward", "ar", "all_reduce", 1, 28, P <= 4 ? ar_recv[P - 1] : 2 * (P - 1) * 28 / P);
  expect_counter(s, "forward", "sr", "send_recv", 1, 4 * (r + 1), 4 * (left + 1));
  expect_counter(s, "backward", "bc", "broadcast", 1, 72, r != P - 1 ? 72 : 0);
  expect_counter(s, "backward", "iag", "all_gather", 1, 16, (P - 1) * 16);
  expect_counter(s, "backward", "isr", "send_recv", 1, 16, 16);

  // A label names one call site, hence one op; every rank detects the misuse before communicating.
  w.set_phase("forward");
  EXPECT_THROW(w.all_reduce<float>("bc", f.data(), 1), Error);

  // The report carries the same numbers.
  nlohmann::json j = comm_stats_json(s);
  EXPECT_EQ(j["forward"]["ag"]["op"], "all_gather");
  EXPECT_EQ(j["forward"]["ag"]["recv_bytes"].get<int64_t>(), (P - 1) * 48);
  EXPECT_EQ(j["backward"]["isr"]["payload_bytes"].get<int64_t>(), 16);
  EXPECT_NE(comm_stats_table(s).find("iag"), std::string::npos);

  w.reset_stats();
  EXPECT_TRUE(w.stats().empty());
}

TEST(Comm, WaitChargesTheBlockedTime) {
  Communicator w = Communicator::world();
  const int P = w.size(), r = w.rank();
  if (P < 2) GTEST_SKIP() << "needs a peer that is late";
  // Rank 0 posts its send 200 ms late; rank 1, already waiting for it, must be charged that time in wait().
  constexpr double kDelaySeconds = 0.2;
  float out = 1, in = 0;
  w.barrier();
  if (r == 0) std::this_thread::sleep_for(std::chrono::duration<double>(kDelaySeconds));
  CommRequest q = r == 0 ? w.isend_recv<float>("late", &out, 1, 1, nullptr, 0, MPI_PROC_NULL)
                  : r == 1
                      ? w.isend_recv<float>("late", nullptr, 0, MPI_PROC_NULL, &in, 1, 0)
                      : w.isend_recv<float>("late", nullptr, 0, MPI_PROC_NULL, nullptr, 0, MPI_PROC_NULL);
  w.wait(q);
  const CommCounter& c = w.stats().at("forward").at("late");
  EXPECT_GE(c.seconds, 0.0);
  if (r == 1) {
    EXPECT_EQ(in, 1.0f);
    EXPECT_GE(c.seconds, kDelaySeconds / 4);
  }
  w.barrier();
}

TEST(Comm, TraceHasOneCommSpanPerCall) {
  Communicator w = Communicator::world();
  trace_enable(w.rank());
  std::vector<float> buf(100, 1.0f);
  w.all_reduce<float>("trace.allreduce", buf.data(), 100);
  CommRequest q = w.ibroadcast<float>("trace.ibroadcast", buf.data(), 100, 0);
  w.wait(q);
  const std::filesystem::path path = std::filesystem::temp_directory_path() /
                                     fmt::format("tsp_test_comm_trace_{}_{}.json", getpid(), w.rank());
  trace_write(path.string());
  nlohmann::json doc;
  {
    std::ifstream in(path);
    ASSERT_TRUE(in) << path;
    doc = nlohmann::json::parse(in);
  }
  std::filesystem::remove(path);
  int allreduce_spans = 0, ibroadcast_spans = 0;
  for (const auto& e : doc.at("traceEvents")) {
    if (e.at("ph") != "X" || e.at("cat") != "comm") continue;
    EXPECT_GE(e.at("dur").get<double>(), 0.0);
    EXPECT_EQ(e.at("pid").get<int>(), w.rank());
    if (e.at("name") == "trace.allreduce") ++allreduce_spans;
    if (e.at("name") == "trace.ibroadcast") ++ibroadcast_spans;
  }
  EXPECT_EQ(allreduce_spans, 1);
  EXPECT_EQ(ibroadcast_spans, 1);
}

TEST(Comm, SplitSharedCountsIntoTheParentsCountersAndPhase) {
  Communicator w = Communicator::world();
  const int r = w.rank();
  Communicator row = w.split_shared(r / 2, r), separate = w.split(r / 2, r);
  w.set_phase("backward");
  EXPECT_EQ(row.phase(), "backward");
  double x = 1;
  row.all_reduce<double>("row.sum", &x, 1);
  separate.all_reduce<double>("separate.sum", &x, 1);
  EXPECT_EQ(&row.stats(), &w.stats());
  EXPECT_EQ(w.stats().at("backward").at("row.sum").calls, 1);
  EXPECT_EQ(w.stats().at("backward").count("separate.sum"), 0u);
  row.set_phase("optimizer");
  EXPECT_EQ(w.phase(), "optimizer");
  EXPECT_EQ(separate.phase(), "forward");
}

}  // namespace
}  // namespace tsp

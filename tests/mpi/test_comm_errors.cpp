// mpi-ranks: 2
// MPI failures become tsp::Error exceptions that name the call, the call site and the rank (MPI_ERRORS_RETURN
// is set by Communicator::init), and misuse is rejected on every rank before anything is sent. Communicator::
// abort is not exercised here: it ends the whole job by design.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "comm/communicator.h"
#include "core/check.h"

namespace tsp {
namespace {

std::string mpi_error_string(int rc) {
  char msg[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  return std::string(msg, len);
}

TEST(CommErrors, MpiCheckNamesTheCallTheRankAndMpisReason) {
  Communicator w = Communicator::world();
  int x = 0;
  const int rc = MPI_Send(&x, 1, MPI_INT, w.size() + 5, 0, MPI_COMM_WORLD);
  ASSERT_NE(rc, MPI_SUCCESS) << "MPI_ERRORS_RETURN must be set on MPI_COMM_WORLD";
  try {
    mpi_check(rc, "MPI_Send");
    FAIL() << "mpi_check did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MPI_Send"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("rank {}", w.rank())), std::string::npos) << msg;
    EXPECT_NE(msg.find(mpi_error_string(rc)), std::string::npos) << msg;
  }
  EXPECT_NO_THROW(mpi_check(MPI_SUCCESS, "MPI_Send"));
}

TEST(CommErrors, FailingCallsThrowWithTheirLabel) {
  Communicator w = Communicator::world();
  float out = 1, in = 0;
  try {
    w.send_recv<float>("bad.exchange", &out, 1, w.size() + 3, &in, 1, w.size() + 3);
    FAIL() << "send_recv to a rank that does not exist did not throw";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("MPI_Sendrecv"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bad.exchange"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fmt::format("rank {}", w.rank())), std::string::npos) << msg;
  }
  EXPECT_THROW(w.isend_recv<float>("bad.isend", &out, 1, w.size() + 3, &in, 0, 0), Error);
  // The receive posted before the failing send is cancelled, not left pointing at `in`.
  try {
    w.isend_recv<float>("bad.isend_with_recv", &out, 1, w.size() + 3, &in, 1, 1 - w.rank());
    FAIL() << "isend_recv to a rank that does not exist did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("MPI_Isend [bad.isend_with_recv]"), std::string::npos) << e.what();
  }
  // The job goes on normally after a returned error.
  float sum = 1;
  w.all_reduce<float>("after_error", &sum, 1);
  EXPECT_EQ(sum, static_cast<float>(w.size()));
}

TEST(CommErrors, MisuseIsRejectedBeforeCommunicating) {
  Communicator w = Communicator::world();
  float x = 0;
  EXPECT_THROW(w.broadcast<float>("bad.root", &x, 1, w.size()), Error);
  EXPECT_THROW(w.reduce<float>("bad.root", &x, &x, 1, -1), Error);
  EXPECT_THROW(w.all_reduce<float>("bad.count", &x, -1), Error);
  EXPECT_THROW(w.split(-1, 0), Error);
  w.all_reduce<float>("label", &x, 1);
  EXPECT_THROW(w.broadcast<float>("label", &x, 1, 0), Error);
  EXPECT_THROW(detail::comm_set_max_count(0), Error);
  w.barrier();
}

}  // namespace
}  // namespace tsp

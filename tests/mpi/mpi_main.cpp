// gtest main for multi-rank tests: every rank runs every test; only rank 0 prints gtest's progress so the
// ctest log stays readable, but a failure on any rank is printed by that rank and fails the job.
#include <gtest/gtest.h>

#include "comm/communicator.h"

namespace {
class QuietListener : public testing::EmptyTestEventListener {
 public:
  explicit QuietListener(int rank) : rank_(rank) {}
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (r.failed())
      fprintf(stderr, "[rank %d] %s:%d: %s\n", rank_, r.file_name() ? r.file_name() : "?", r.line_number(),
              r.summary());
  }

 private:
  int rank_;
};
}  // namespace

int main(int argc, char** argv) {
  tsp::Communicator::init(&argc, &argv);
  testing::InitGoogleTest(&argc, argv);
  int rank = tsp::Communicator::world().rank();
  if (rank != 0) {
    auto& listeners = testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new QuietListener(rank));
  }
  int rc = RUN_ALL_TESTS();
  tsp::Communicator::finalize();
  return rc;
}

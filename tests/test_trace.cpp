// Per-rank trace file names (core/trace.h), as README and docs/bench.md describe them.
#include <gtest/gtest.h>

#include "core/trace.h"

namespace tsp {
namespace {

TEST(Trace, OneFilePerRankWithTheRankBeforeJson) {
  EXPECT_EQ(trace_path_for_rank("out.json", 0, 1), "out.json");
  EXPECT_EQ(trace_path_for_rank("out.json", 1, 2), "out.rank1.json");
  EXPECT_EQ(trace_path_for_rank("dir/trace", 3, 4), "dir/trace.rank3.json");
  EXPECT_EQ(trace_paths("t.json", 2), (std::vector<std::string>{"t.rank0.json", "t.rank1.json"}));
}

}  // namespace
}  // namespace tsp

// Reports of communication counters: the JSON layout, the human table and the counter-wise sum.
#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "comm/comm_report.h"
#include "core/check.h"

namespace tsp {
namespace {

CommStats example() {
  CommStats s;
  s["forward"]["attn.kv_allgather"] = {"all_gather", 4, 4 << 20, 12 << 20, 0.25};
  s["forward"]["mlp.out_reduce_scatter"] = {"reduce_scatter", 2, 3 << 19, 9 << 19, 0.5};
  s["backward"]["grad.all_reduce"] = {"all_reduce", 1, 1000, 1500, 0.125};
  return s;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

TEST(CommReport, JsonHasOneObjectPerPhaseAndLabel) {
  const nlohmann::json j = comm_stats_json(example());
  ASSERT_EQ(j.size(), 2u);
  const auto& c = j.at("forward").at("attn.kv_allgather");
  EXPECT_EQ(c.at("op"), "all_gather");
  EXPECT_EQ(c.at("calls").get<int64_t>(), 4);
  EXPECT_EQ(c.at("payload_bytes").get<int64_t>(), 4 << 20);
  EXPECT_EQ(c.at("recv_bytes").get<int64_t>(), 12 << 20);
  EXPECT_EQ(c.at("seconds").get<double>(), 0.25);
  EXPECT_EQ(j.at("backward").at("grad.all_reduce").at("recv_bytes").get<int64_t>(), 1500);
  EXPECT_TRUE(comm_stats_json({}).is_object());
  EXPECT_TRUE(comm_stats_json({}).empty());
}

TEST(CommReport, TableIsAlignedWithBytesInMiB) {
  const std::vector<std::string> t = lines(comm_stats_table(example()));
  ASSERT_EQ(t.size(), 4u);  // header + 3 rows
  EXPECT_NE(t[0].find("payload MiB"), std::string::npos);
  // Map order: "backward" before "forward"; 4 MiB payload, 12 MiB received, 1.5 and 4.5 MiB.
  EXPECT_NE(t[1].find("grad.all_reduce"), std::string::npos);
  EXPECT_NE(t[1].find("0.00"), std::string::npos);
  EXPECT_NE(t[2].find("attn.kv_allgather"), std::string::npos);
  EXPECT_NE(t[2].find("4.00"), std::string::npos);
  EXPECT_NE(t[2].find("12.00"), std::string::npos);
  EXPECT_NE(t[3].find("1.50"), std::string::npos);
  EXPECT_NE(t[3].find("4.50"), std::string::npos);
  // Right-aligned numbers end every line in the same column, and the columns start at the same offsets.
  for (const std::string& l : t) EXPECT_EQ(l.size(), t[0].size()) << l;
  const size_t op_col = t[0].find("op");
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NE(t[i].substr(op_col, 3), "   ") << t[i];
  EXPECT_EQ(lines(comm_stats_table({})).size(), 1u);
}

TEST(CommReport, SumAddsCountersAndKeepsDisjointOnes) {
  CommStats b;
  b["forward"]["attn.kv_allgather"] = {"all_gather", 1, 10, 30, 1.0};
  b["optimizer"]["params.broadcast"] = {"broadcast", 1, 8, 8, 0.5};
  const CommStats s = comm_stats_sum(example(), b);
  const CommCounter& c = s.at("forward").at("attn.kv_allgather");
  EXPECT_EQ(c.calls, 5);
  EXPECT_EQ(c.payload_bytes, (4 << 20) + 10);
  EXPECT_EQ(c.recv_bytes, (12 << 20) + 30);
  EXPECT_DOUBLE_EQ(c.seconds, 1.25);
  EXPECT_EQ(s.at("optimizer").at("params.broadcast").op, "broadcast");
  EXPECT_EQ(s.at("backward").at("grad.all_reduce").calls, 1);
  b["backward"]["grad.all_reduce"] = {"reduce", 1, 1, 1, 0};
  EXPECT_THROW(comm_stats_sum(example(), b), Error);
}

// train --json reports the last step's communication as the difference of two snapshots of the counters.
TEST(CommReport, MinusLeavesTheCallsInBetween) {
  CommStats later = example();
  later["forward"]["attn.kv_allgather"].calls += 2;
  later["forward"]["attn.kv_allgather"].recv_bytes += 600;
  later["optimizer"]["params.broadcast"] = {"broadcast", 1, 8, 8, 0.5};
  const CommStats d = comm_stats_minus(later, example());
  EXPECT_EQ(d.at("forward").at("attn.kv_allgather").calls, 2);
  EXPECT_EQ(d.at("forward").at("attn.kv_allgather").recv_bytes, 600);
  EXPECT_EQ(d.at("optimizer").at("params.broadcast").calls, 1);
  EXPECT_EQ(d.count("backward"), 0u);  // no calls in between
  EXPECT_FALSE(d.at("forward").count("mlp.out_reduce_scatter"));
  EXPECT_EQ(comm_recv_bytes(d), 608);
  EXPECT_EQ(comm_recv_bytes(example()), (12 << 20) + (9 << 19) + 1500);
  EXPECT_THROW(comm_stats_minus(example(), later), Error);  // not an earlier snapshot
}

}  // namespace
}  // namespace tsp

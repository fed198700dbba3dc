// Threads per rank (core/threading.h): the CPUs each rank may use split among the ranks that compete for
// them, overrides, and bad values.
#include <gtest/gtest.h>

#include "core/check.h"
#include "core/threading.h"

namespace tsp {
namespace {

CpuMask cpus(std::initializer_list<int> ids) {
  CpuMask m(16, 0);
  for (int c : ids) m[size_t(c / 64)] |= uint64_t(1) << (c % 64);
  return m;
}

ThreadInputs inputs(int cores, int sharing, int local = 0) {
  ThreadInputs in;
  in.cores = cores;
  in.ranks_sharing = sharing;
  in.local_ranks = local ? local : sharing;
  return in;
}

TEST(Threading, UnboundRanksSplitTheCores) {
  // One rank on 16 cores, 2 on 2 (the machine), 4 on 2 (oversubscribed by MPI, not by threads).
  EXPECT_EQ(choose_threads(inputs(16, 1)).threads, 16);
  EXPECT_EQ(choose_threads(inputs(2, 1)).threads, 2);
  EXPECT_EQ(choose_threads(inputs(2, 2)).threads, 1);
  EXPECT_EQ(choose_threads(inputs(16, 3)).threads, 5);
  const ThreadPlan over = choose_threads(inputs(2, 4));
  EXPECT_EQ(over.threads, 1);
  EXPECT_FALSE(over.oversubscribed());  // one thread each: MPI's oversubscription, not ours
  EXPECT_EQ(over.source, "auto");
}

TEST(Threading, RanksSharingCountsOverlappingCpuSets) {
  // Unbound: every rank sees every core.
  const std::vector<CpuMask> unbound(4, cpus({0, 1, 2, 3}));
  EXPECT_EQ(ranks_sharing_cpus(unbound, 2), 4);
  // Bound to a core each (mpirun's default at np <= 2): nobody shares.
  const std::vector<CpuMask> bound = {cpus({0}), cpus({1}), cpus({2}), cpus({3})};
  EXPECT_EQ(ranks_sharing_cpus(bound, 0), 1);
  // Bound per socket: two pairs.
  const std::vector<CpuMask> sockets = {cpus({0, 1}), cpus({0, 1}), cpus({2, 3}), cpus({2, 3})};
  EXPECT_EQ(ranks_sharing_cpus(sockets, 3), 2);
  EXPECT_EQ(choose_threads(inputs(cpu_count(sockets[3]), ranks_sharing_cpus(sockets, 3), 4)).threads, 1);
  EXPECT_EQ(cpu_count(cpus({0, 5, 70})), 3);
  EXPECT_GE(cpu_count(affinity_mask()), 1);
}

TEST(Threading, OverridesWinInOrder) {
  ThreadInputs in = inputs(8, 1);
  in.omp_env = "3";
  in.blas_env = "5";
  EXPECT_EQ(choose_threads(in).threads, 3);
  EXPECT_EQ(choose_threads(in).source, "OMP_NUM_THREADS");
  in.cli_threads = 2;
  EXPECT_EQ(choose_threads(in).threads, 2);
  EXPECT_EQ(choose_threads(in).source, "--threads");
  in.cli_threads = 0;
  in.omp_env = "";
  EXPECT_EQ(choose_threads(in).threads, 5);
  in.omp_env = "4,2";  // one count per nesting level: the outer one
  EXPECT_EQ(choose_threads(in).threads, 4);
  ThreadInputs over = inputs(2, 2);
  over.cli_threads = 2;
  EXPECT_TRUE(choose_threads(over).oversubscribed());
}

TEST(Threading, BadValuesNameTheirSource) {
  ThreadInputs in = inputs(2, 1);
  in.omp_env = "many";
  try {
    choose_threads(in);
    ADD_FAILURE() << "OMP_NUM_THREADS=many accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("OMP_NUM_THREADS='many' is not a thread count"), std::string::npos);
  }
  in.omp_env = "0";
  EXPECT_THROW(choose_threads(in), UsageError);
  in.omp_env = "";
  in.cli_threads = -1;
  EXPECT_THROW(choose_threads(in), UsageError);
}

TEST(Threading, SummaryAndJsonSayWhereTheCountCameFrom) {
  ThreadPlan p = choose_threads(inputs(2, 1));
  EXPECT_EQ(thread_summary(p), "2 threads per rank (OpenMP + OpenBLAS; auto: 2 cores, 1 rank on them)");
  const nlohmann::json j = thread_json(p);
  EXPECT_EQ(j["openmp"], 2);
  EXPECT_EQ(j["blas"], 2);
  EXPECT_EQ(j["source"], "auto");
  EXPECT_EQ(j["ranks_sharing_cores"], 1);
}

}  // namespace
}  // namespace tsp

#include "bench/device_profile.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <vector>

#include "core/check.h"
#include "core/memory.h"

namespace tsp {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Seconds per call of `op` (mean over ranks) over `reps` calls after one untimed call.
template <class Op>
double timed(Communicator& c, int reps, Op op) {
  op();
  c.barrier();
  const double t0 = now_s();
  for (int r = 0; r < reps; ++r) op();
  double dt = now_s() - t0;
  c.all_reduce("profile.time_sum", &dt, 1);
  return dt / c.size() / reps;
}

}  // namespace

nlohmann::json measure_device_profile(const nlohmann::json& bench, Communicator& world) {
  TSP_REQUIRE(world.size() >= 2,
              "--write-device-profile measures the link between ranks and needs at least 2 ranks (got {})",
              world.size());
  // A private communicator, so that the layout's counters never see the probes.
  Communicator c = world.split(0, world.rank());
  const int P = c.size();
  // Bandwidth: an all-gather of 8 MiB per rank, bytes received per rank per second.
  const int64_t n = int64_t(2) << 20;  // floats
  std::vector<float> send(size_t(n), 1.0f), recv(size_t(n) * size_t(P));
  const double gather_s =
      timed(c, 5, [&] { c.all_gather("profile.allgather", send.data(), recv.data(), n); });
  const double link = double(P - 1) * double(n) * sizeof(float) / gather_s;
  // Latency: an all-reduce of one double.
  double x = 1;
  const double latency = timed(c, 200, [&] { c.all_reduce("profile.latency", &x, 1); });
  // Memory per rank: the node's memory shared by the ranks on it.
  MPI_Comm node = MPI_COMM_NULL;
  mpi_check(MPI_Comm_split_type(world.raw(), MPI_COMM_TYPE_SHARED, world.rank(), MPI_INFO_NULL, &node),
            "MPI_Comm_split_type");
  int local = 1;
  mpi_check(MPI_Comm_size(node, &local), "MPI_Comm_size");
  MPI_Comm_free(&node);
  const int64_t memory = host_memory_bytes() / local;

  double sgemm = 0;
  for (const auto& e : bench.at("per_rank")) sgemm += e.at("sgemm_flops_per_s").get<double>();
  sgemm /= double(bench.at("per_rank").size());
  const double efficiency = std::clamp(bench.at("model_flops_ratio").get<double>(), 1e-3, 1.0);
  char host[256] = "localhost";
  gethostname(host, sizeof(host) - 1);
  return {{"name", fmt::format("measured-{}", host)},
          {"description",
           fmt::format("{} ranks on {} ({} per node), measured by tsp bench", world.size(), host, local)},
          {"source",
           fmt::format("tsp bench --strategy {} --seq-len {} --batch {}: cblas_sgemm n={} per rank (no bf16 "
                       "GEMM: bf16 = fp32 rate), model FLOP/s / sgemm = {:.3f}; all_gather of {} MiB per "
                       "rank on {} ranks; all_reduce of 8 bytes; MemTotal / ranks per node",
                       bench.value("strategy", std::string("?")), bench.value("seq_len", int64_t(0)),
                       bench.value("batch", int64_t(0)), bench.value("sgemm_n", 0), efficiency,
                       n * int64_t(sizeof(float)) >> 20, P)},
          {"matmul_flops_fp32", sgemm},
          {"matmul_flops_bf16", sgemm},
          {"matmul_efficiency", efficiency},
          {"link_bytes_per_s", link},
          {"dp_bytes_per_s", link},
          {"latency_s", latency},
          {"memory_bytes", memory}};
}

void write_device_profile(const nlohmann::json& profile, const std::string& path, Communicator& world) {
  if (world.rank() == 0) {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream f(tmp);
      f << profile.dump(2) << "\n";
      TSP_REQUIRE(static_cast<bool>(f), "--write-device-profile: cannot write {}", tmp);
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    TSP_REQUIRE(!ec, "--write-device-profile: cannot rename {} to {}: {}", tmp, path, ec.message());
  }
  world.barrier();
}

}  // namespace tsp

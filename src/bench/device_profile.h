// A device profile for `tsp plan --device FILE.json` measured on the machine the benchmark runs on: the
// in-process sgemm rate, the achieved fraction of it in the benchmarked step, the all-gather bandwidth and
// the latency of a tiny all-reduce between the job's ranks, and the memory per rank. Run it with one rank per
// device (core) as you would train, and the planner projects for this machine from measurements instead of
// datasheet numbers.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "comm/communicator.h"

namespace tsp {

// Collective over `world` (at least 2 ranks, so that a link can be measured); `bench` is run_bench's
// document (its sgemm rates and model_flops_ratio). Returns the profile (the same on every rank).
nlohmann::json measure_device_profile(const nlohmann::json& bench, Communicator& world);

// Rank 0 writes the profile to `path` atomically (a temporary file renamed into place).
void write_device_profile(const nlohmann::json& profile, const std::string& path, Communicator& world);

}  // namespace tsp

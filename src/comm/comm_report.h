// Reports of the per-call-site communication counters (CommStats): JSON for machines (run reports, tests that
// compare with the closed-form volumes of tsp-spec.md §9) and an aligned table for people.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "comm/communicator.h"

namespace tsp {

// {phase: {label: {"op", "calls", "payload_bytes", "recv_bytes", "seconds"}}}; an empty object for no calls.
nlohmann::json comm_stats_json(const CommStats& stats);

// One row per (phase, label) in map order, bytes in MiB with 2 decimals, seconds with 6 decimals.
std::string comm_stats_table(const CommStats& stats);

// Counter-wise sum (e.g. of several communicators of one rank, or of several steps). A label that names
// different ops in `a` and `b` is a programming error and throws tsp::Error.
CommStats comm_stats_sum(const CommStats& a, const CommStats& b);

// Counter-wise a - b, for b a snapshot of a taken earlier (the calls in between); labels without calls in
// between are left out.
CommStats comm_stats_minus(const CommStats& a, const CommStats& b);

// Bytes received, summed over every phase and label.
int64_t comm_recv_bytes(const CommStats& stats);

}  // namespace tsp

// `tsp bench --compare LIST`: several layouts measured one after another in one job (same model, shape and
// ranks), each with its buffers freed and the allocator peaks reset before the next, and ratios against the
// first. Entry syntax (docs/bench.md):  NAME[:TxS][+sp][+kv][+seq]  e.g. tp, tpsp:2x2, tp+sp (= tp-sp),
// tsp+kv, tsp+seq (with --decode: the sequence KV layout).
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/bench_run.h"

namespace tsp {

struct BenchLayout {
  std::string label;  // the entry as written
  std::string strategy;
  StrategyOptions layout;
  DecodeOptions kv;  // +seq (tsp, --decode): the sequence KV layout
};

// Parses the comma-separated list; `base` supplies what every entry shares (--dp, --zero1). UsageError names
// the entry and the allowed syntax.
std::vector<BenchLayout> parse_compare_list(const std::string& list, const StrategyOptions& base);

// Runs run_bench for every layout with the rest of `o` (o.trace: one trace per rank holding every layout,
// each under a "bench.layout <label>" span). Returns {baseline, ranks, mode, seq_len, batch, layouts:
// [run_bench documents], ratios: [{label, tokens_per_s, memory_peak_bytes_max,
// comm_recv_bytes_per_step_max}]}, the same on every rank.
nlohmann::json run_compare(const BenchOptions& o, const std::vector<BenchLayout>& layouts,
                           Communicator& world);

// The ratios as an aligned table for people.
std::string compare_table(const nlohmann::json& doc);

}  // namespace tsp

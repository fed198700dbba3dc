// `tsp bench --decode` (docs/inference.md): serving measured per rank — a warm-up generation, then a timed
// one of `batch` random prompts of prompt_len tokens and new_tokens new tokens each: time to first token (the
// prefill and the first pick), time per output token over the decode steps (mean, p50, p99), output
// tokens/s, peak bytes per allocator category (kv_cache among them), and communication per phase and label
// (the decode's per step).
#pragma once

#include <nlohmann/json.hpp>

#include "bench/bench_run.h"

namespace tsp {

// UsageError (every rank, before any communication) for a shape the model cannot serve.
void validate_decode_bench_options(const BenchOptions& o);

// The same document on every rank; fields in docs/inference.md.
nlohmann::json run_decode_bench(const BenchOptions& o, Communicator& world);

}  // namespace tsp

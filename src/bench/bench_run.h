// `tsp bench`: warm-up then timed training steps (forward + backward + AdamW) or prefill forwards of one
// layout, measured per rank — peak bytes per allocator category and VmHWM, communication per (phase, label),
// and each step's wall time split into compute, exposed communication and idle — plus tokens/s, model FLOP/s
// and the cblas_sgemm rate measured in the same processes. Definitions: docs/bench.md.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "model/config.h"
#include "parallel/decode.h"
#include "parallel/registry.h"

namespace tsp {

struct BenchOptions {
  ModelConfig model;
  std::string strategy = "tsp";
  StrategyOptions layout;
  std::string label;  // how the layout is named in reports (defaults to the strategy name)
  std::string dtype = "float32";
  int64_t seq_len = 512;
  int64_t batch = 1;
  int64_t steps = 3;          // timed steps
  int64_t warmup = 1;         // untimed steps first (allocations, first touch of every buffer)
  bool forward_only = false;  // prefill: Transformer::forward only, no gradients or optimizer allocated
  bool overlap = true;  // false (--no-overlap): every transfer completes before the compute it overlapped
  uint64_t seed = 1;
  std::string trace;   // Chrome trace per rank (FILE, or FILE.rankR.json on several ranks); empty: none
  int sgemm_n = 2048;  // the GEMM ceiling's problem size and timed repetitions
  int sgemm_reps = 3;
  // --decode (decode_bench.h): `batch` prompts of prompt_len random tokens, new_tokens generated each.
  bool decode = false;
  int64_t prompt_len = 512, new_tokens = 32;
  DecodeOptions kv;  // tsp's KV layout
  // --decode under bf16 products: round the weights once per generation (false: in every product).
  bool freeze_bf16_weights = true;
  bool blocked_weights = false;  // --decode: --blocked-weights (kernels/blocked_weights.h)
};

// Model FLOPs of one step over the whole batch, matrix products only (the formula of bench/bench_step.cpp):
// training 6·P_m·B·S + 7·S²·q_dim·L·B, forward only 2·P_m·B·S + 2·S²·q_dim·L·B, with P_m the matrix
// parameters incl. the LM head (counted once even when tied, since the head's product is performed).
double model_flops_per_step(const ModelConfig& c, int64_t batch, int64_t seq_len, bool forward_only);

// The layout options as the reports print them.
nlohmann::json layout_json(const StrategyOptions& l);

// Every rank's string on every rank (the report of one rank per entry), over a communicator of the job.
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine);

// Throws UsageError (identically on every rank, before any communication) for options no layout can run.
void validate_bench_options(const BenchOptions& o);

// Runs on every rank of `world` and returns the same document on every rank (per_rank gathered over a
// private communicator, so the layout's counters do not see it). Every buffer of the layout is freed before
// it returns. Fields: docs/bench.md.
nlohmann::json run_bench(const BenchOptions& o, Communicator& world);

}  // namespace tsp

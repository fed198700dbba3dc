// tsp plan --inference (docs/inference.md): per layout, what serving costs a rank — the weights, the KV
// cache, the prefill's and the decode's transient buffers — and a decode step's communication and time per
// output token. The KV-cache bytes and every decode (label, calls, payload, received bytes) are the
// runtime's own formulas (tests/mpi/test_decode_plan.cpp holds them to a real run exactly); the transient
// buffers are an estimate of the named buffers (the planner's convention for workspace).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "parallel/kv_cache.h"
#include "plan/plan.h"
#include "plan/report.h"

namespace tsp::plan {

// A layout as it serves: tsp has two KV-cache layouts; the others have one (heads over T, positions over
// Σ).
struct ServeLayout {
  LayoutSpec layout;
  KvLayout kv = KvLayout::heads;  // tsp only
  std::string name() const;       // "single", "tp", "sp", "tpsp", "tsp-heads", "tsp-sequence"
  std::string kv_name() const;    // "heads", "sequence" (positions split), or "heads+sequence" (tpsp)
  std::string runtime_flags() const;
};

struct ServeRequestShape {
  int64_t batch = 1;    // sequences decoded together
  int64_t prompt = 0;   // longest prompt: what the prefill runs
  int64_t context = 0;  // positions every sequence reaches (prompt + new tokens, <= max positions)
};

struct InferencePrediction {
  ServeLayout layout;
  bool applicable = true;
  std::string reason;
  int64_t prompt_padded = 0, kv_context = 0;            // the runtime's padded prompt S and cache context C
  bool exceeds_max_positions = false;                   // the context is beyond max_position_embeddings
  int64_t parameters = 0, kv_cache = 0;                 // bytes per rank (exact)
  int64_t prefill_transient = 0, decode_transient = 0;  // bytes per rank (estimate)
  int64_t peak() const { return parameters + kv_cache + std::max(prefill_transient, decode_transient); }
  // One decode step of `batch` rows, phase "decode" (exact), and the step's work per rank.
  CommByLabel comm;
  double decode_flops = 0;            // matrix products and attention, per step
  double decode_bytes_read = 0;       // weights and the KV cache read per step
  double prefill_flops = 0;           // per rank
  int64_t decode_recv_bytes() const;  // received per rank per step, all labels
};

InferencePrediction predict_inference(const ModelConfig& c, const ServeLayout& layout,
                                      const ServeRequestShape& s, const Policy& policy);
// single (1 rank), tp, sp, tpsp for every T×Σ with both > 1 (restricted to --tp/--sp), tsp with both KV
// layouts.
std::vector<ServeLayout> serve_layouts_for(int ranks, int only_tp = 0, int only_sp = 0);

struct InferenceProjection {
  double compute_s = 0, memory_s = 0, comm_s = 0;  // one decode step
  double tpot_s = 0;                               // max(compute, memory) + comm
  double output_tokens_per_s = 0;                  // batch / tpot
  double ttft_s = 0;                               // prefill: compute + its communication
};
InferenceProjection project_inference(const InferencePrediction& p, const ServeRequestShape& s,
                                      const Policy& policy, const DeviceProfile& dev);

struct InferenceRow {
  InferencePrediction pred;
  InferenceProjection proj;
  bool fits = false;
};
struct InferenceResult {
  std::vector<InferenceRow> rows;
  int recommended = -1;  // the lowest time per output token among the layouts that fit
  int64_t budget = 0;
};
InferenceResult run_inference(const Request& r, const ServeRequestShape& s);
nlohmann::json inference_json(const Request& r, const ServeRequestShape& s, const InferenceResult& res);
std::string inference_table(const Request& r, const ServeRequestShape& s, const InferenceResult& res);

}  // namespace tsp::plan

// tsp plan's report: every layout for one request, the recommendation, the JSON document, the human table
// and the sweeps behind --plot.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "plan/plan.h"

namespace tsp::plan {

struct Request {
  ModelConfig model;
  std::string model_name;  // preset name or config path, for the report
  RunShape shape;
  int ranks = 1;  // D: ranks per replica
  int dp = 1;
  bool zero1 = false;
  int only_tp = 0, only_sp = 0;  // restrict tpsp to this factorisation
  bool keep_gathered_kv = false;
  std::string dtype = "float32", optimizer_dtype = "float32", master = "auto", recompute = "runtime";
  std::string grad_reduce_dtype = "float32";  // gradient sums on the wire (the runtime's --grad-reduce-dtype)
  std::string weight_comm_dtype;              // tsp's weight shards on the wire; empty: --dtype
  std::string device = "cpu-this-machine";
  int64_t budget = 0;  // bytes per device; 0: the device's memory
};

// Element size of a dtype name (float64, float32, bf16); UsageError naming the option otherwise.
int dtype_bytes(const std::string& option, const std::string& name);
Recompute parse_recompute(const std::string& name);
std::string recompute_name(Recompute r);
// The policy a request asks for (validates dtype, optimizer dtype, master-weights and recompute names).
Policy policy_of(const Request& r);

struct Row {
  Prediction pred;
  Projection proj;
  Recompute recompute = Recompute::runtime;  // the effective mode
  bool fits = false;
};
struct Result {
  std::vector<Row> rows;
  int recommended = -1;  // index into rows: the fastest (with overlap) applicable layout that fits
  int64_t budget = 0;
};
Result run(const Request& r);
// The device as each of the request's ranks x dp ranks sees it (device_for_ranks).
DeviceProfile device_of(const Request& r);
// --seq-len beyond the model's max_sequence_length() (max_position_embeddings, extended by rope_scaling,
// never past a sliding window): planned (a context extension), flagged in the report (JSON key
// context_exceeds_max_position_embeddings, the name users script against).
bool context_exceeds_model_context(const Request& r);
// Why there is no recommendation: no layout applies, or none of the applicable ones fits (and how close).
std::string no_recommendation_reason(const Result& res);
nlohmann::json to_json(const Request& r, const Result& res);
std::string to_table(const Request& r, const Result& res);

// 1.23 GiB, 4.56M: the report's units.
std::string human_bytes(double bytes);
std::string human_rate(double v);

// The sweeps --plot draws: memory vs sequence length, forward traffic vs B·S, tokens/s vs device count.
nlohmann::json sweep_json(const Request& r);

}  // namespace tsp::plan

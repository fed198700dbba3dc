// The equivalence check behind `tsp check`: the same random model and batch on every rank, forward and
// backward with a parallel layout and with the single-device model, compared on the loss, the logits and
// every gradient (relative Frobenius error, max over tensors), with the layout's communication per label.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "comm/communicator.h"
#include "model/config.h"
#include "parallel/registry.h"

namespace tsp {

struct CheckOptions {
  ModelConfig model;
  std::string strategy = "tsp";
  std::string dtype = "float64";  // float32 | float64
  int64_t seq_len = 0;
  int64_t batch = 1;
  uint64_t seed = 1;
  StrategyOptions layout;
};

// Tolerances of the relative errors: float64 1e-10, float32 1e-5.
double check_tolerance(const std::string& dtype);

// Runs on every rank of `world`; returns the report (identical on every rank except "comm", which is the
// calling rank's). Fields: strategy, ranks, dtype, seq_len, batch, max_rel_err {loss, logits, grads},
// worst_grad_tensor, tolerance, pass, comm {forward, backward}, matmul_precision. Under --matmul-precision
// bf16 (float32) also vs_fp64 {layout, single, rule, closest_grad_tensor, pass}: both runs against the
// single-device fp64 model, and pass (and tolerance null) by err(layout) <= 1.5 err(single) + 1e-3.
nlohmann::json run_check(const CheckOptions& o, Communicator& world);

}  // namespace tsp

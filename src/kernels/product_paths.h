// --matmul-precision auto: each of the linear layer's float products (Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X) runs
// on whichever path measured faster on this machine, fp32 (cblas_sgemm) or bf16 (operands rounded to bf16,
// oneDNN, fp32 accumulation), each path charged the conversions it pays in kernels::linear_forward /
// linear_backward. bf16 is 3-5x faster with AMX or Zen's full-rate vdpbf16ps, but ran at 0.66x of sgemm on
// Intel AVX512-BF16 without AMX (docs/performance.md), so neither can be assumed.
//
// The choice is a table, process-wide, keyed by
//   (product, how the weight is held, out, in, the output's row stride, token bucket),
// token bucket = min(n, 512) rounded up to a power of two (1, 2, 4, ..., 512): the rate of a product depends
// on its shape, and past a few hundred rows the bf16/fp32 ratio stops moving (../shared/docs/onednn.md),
// while small n (decode) is bound by reading the weight. The first time a (product, weight, out, in, stride)
// is met, every token bucket of it is measured at once, so that the table holds every key a run will use
// after its first training step (a checkpoint saved then restores every choice; a bucket measured later in a
// resumed run could choose differently from the uninterrupted one). Measured on synthetic operands of the
// bucket's rows and the real weight, each path a few times, best of, on the calling thread under a lock (the
// other threads wait; the measurement happens once per shape). After that a product's path depends on the
// table alone, never on timing noise: auto is deterministic once the table is fixed, and
// set_product_paths() fixes it from a saved one.
//
// How the weight is held changes what each path pays: a weight in fp32 is rounded by the bf16 path on every
// call; a weight held in bf16 — a shard that travelled in bf16 (kernels/weight_ref.h), or a copy registered
// in kernels/frozen_weights.h, which is the weight the model reads — costs the bf16 path nothing and is
// widened to fp32 by the fp32 path. dW reads no weight.
//
// Only the linear layer's products follow the table; attention's tile products stay fp32 under auto.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "kernels/weight_ref.h"

namespace tsp::kernels {

// kernels::linear_forward / linear_backward for float under auto, with n, in and out > 0 (beta: 0 or 1).
void auto_linear_forward(float* y, const float* x, WeightRef<float> w, int64_t n, int64_t in, int64_t out,
                         float beta, int64_t ldy);
void auto_linear_backward(float* dx, float* dw, const float* dy, const float* x, WeightRef<float> w,
                          int64_t n, int64_t in, int64_t out);

// The table:
//   {"summary": product_paths_summary(), "isa": onednn::cpu_isa(),
//    "products": [{"product": "forward" | "dx" | "dw", "weight": "fp32" | "bf16" | "none", "out", "in",
//                  "ld_out", "tokens", "path": "fp32" | "bf16", "fp32_seconds", "bf16_seconds"}, ...]}
// in key order; the seconds are one product at `tokens` rows as measured when the choice was made (kept
// through set_product_paths), null where a restored table did not carry them.
nlohmann::json product_paths_json();
// "auto: 52 of 90 products bf16 (forward 30/30, dx 12/30, dw 10/30)", counting keys.
std::string product_paths_summary();
// Replaces the table with a saved one (product_paths_json()'s "products"; the rest is ignored): its keys
// take the saved path without measuring, keys it lacks are measured when met. Throws UsageError for a
// malformed table, or for one choosing bf16 on a CPU where oneDNN has none.
void set_product_paths(const nlohmann::json& table);
// Empties the table (tests).
void reset_product_paths();
// Keys measured since the process started (tests: a restored table measures nothing).
int64_t product_path_measurements();
// The token bucket of a product of n rows (n >= 1).
int64_t product_token_bucket(int64_t n);

}  // namespace tsp::kernels

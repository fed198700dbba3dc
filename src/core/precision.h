// The run's precision policy, process-wide in the spirit of kernels::matmul_precision: main() sets it once,
// from --dtype and its companions, before a command runs; tests set it for a scope. Every part it changes
// reads it here, so the policy is written once instead of in every kernel and strategy.
//
//   --dtype float32 / float64: everything in that type (the default policy).
//   --dtype bf16: a float32 model (compute, statistics and accumulation in fp32) under this policy
//   (docs/precision.md):
//     weights       held in bf16: every forward and backward reads a bf16 copy of the fp32 master
//                   (ModelParams::sync_bf16, counted under `parameters`; the master under `optimizer`)
//     products      bf16 operands, fp32 accumulation (kernels::matmul_precision bf16)
//     weight wire   bf16 (TSP's broadcasts and rings)
//     activations   saved for the backward in bf16 (parallel/stash.h), and on the wire in bf16: K/V
//                   all-gathers, the TP all-gathers, all-reduces and reduce-scatters and their adjoints
//     statistics    RMSNorm's inverse RMS, the softmax log-sum-exp, the loss: fp32
//     gradients     accumulated in fp32; reduced in fp32, or in bf16 with --grad-reduce-dtype bf16
//     optimizer     AdamW moments in fp32, or in bf16 with --optimizer-dtype bf16
#pragma once

#include <string>
#include <type_traits>

namespace tsp {

struct PrecisionPolicy {
  bool bf16 = false;              // --dtype bf16 (a float model)
  bool bf16_moments = false;      // --optimizer-dtype bf16
  bool bf16_grad_reduce = false;  // --grad-reduce-dtype bf16
};

void set_precision_policy(const PrecisionPolicy& p);
const PrecisionPolicy& precision_policy();

// Whether a model computing in T holds its weights, saved activations and activation traffic in bf16.
template <class T>
bool bf16_storage() {
  return std::is_same_v<T, float> && precision_policy().bf16;
}
template <class T>
bool bf16_moments() {
  return std::is_same_v<T, float> && precision_policy().bf16_moments;
}
template <class T>
bool bf16_grad_reduce() {
  return std::is_same_v<T, float> && precision_policy().bf16_grad_reduce;
}

// What the policy changes, for run headers: "" for the default policy, else e.g. "bf16 weights, activations
// and traffic (fp32 master, compute and statistics) | AdamW moments bf16 | weight gradients reduced in bf16".
std::string precision_summary();
// --json: the dtypes of the AdamW moments and of the weight-gradient reductions ("float32" or "bf16").
inline std::string optimizer_dtype_name() {
  return precision_policy().bf16_moments ? "bf16" : "float32";
}
inline std::string grad_reduce_dtype_name() {
  return precision_policy().bf16_grad_reduce ? "bf16" : "float32";
}

// Sets a policy for a scope and restores the previous one (tests).
class ScopedPrecisionPolicy {
 public:
  explicit ScopedPrecisionPolicy(const PrecisionPolicy& p) : prev_(precision_policy()) {
    set_precision_policy(p);
  }
  ~ScopedPrecisionPolicy() { set_precision_policy(prev_); }
  ScopedPrecisionPolicy(const ScopedPrecisionPolicy&) = delete;
  ScopedPrecisionPolicy& operator=(const ScopedPrecisionPolicy&) = delete;

 private:
  PrecisionPolicy prev_;
};

}  // namespace tsp

#include "core/precision.h"

namespace tsp {

namespace {
// Written by main() before any model exists (and by tests between runs), read while models run.
PrecisionPolicy g_policy;
}  // namespace

void set_precision_policy(const PrecisionPolicy& p) {
  g_policy = p;
}

const PrecisionPolicy& precision_policy() {
  return g_policy;
}

std::string precision_summary() {
  std::string s;
  auto add = [&s](const char* part) { s += (s.empty() ? "" : " | ") + std::string(part); };
  if (g_policy.bf16) add("bf16 weights, activations and traffic (fp32 master, compute and statistics)");
  if (g_policy.bf16_moments) add("AdamW moments bf16");
  if (g_policy.bf16_grad_reduce) add("weight gradients reduced in bf16");
  return s;
}

}  // namespace tsp

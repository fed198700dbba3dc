#include "kernels/matmul_precision.h"

#include <atomic>

#include "core/check.h"
#include "kernels/onednn_matmul.h"

namespace tsp::kernels {

namespace {
std::atomic<MatmulPrecision> g_precision{MatmulPrecision::fp32};
}

MatmulPrecision parse_matmul_precision(const std::string& s) {
  if (s == "fp32" || s == "float32") return MatmulPrecision::fp32;
  if (s == "bf16" || s == "bfloat16") {
    if (!onednn::bf16_supported())
      throw UsageError(fmt::format(
          "--matmul-precision bf16: oneDNN {} has no bf16 product on this CPU (ISA {}; it needs AVX-512); "
          "use --matmul-precision fp32",
          onednn::summary(), onednn::cpu_isa()));
    return MatmulPrecision::bf16;
  }
  if (s == "auto") return MatmulPrecision::automatic;
  throw UsageError(fmt::format("--matmul-precision {} is not supported (allowed: fp32, bf16, auto)", s));
}

std::string to_string(MatmulPrecision p) {
  switch (p) {
    case MatmulPrecision::bf16:
      return "bf16";
    case MatmulPrecision::automatic:
      return "auto";
    case MatmulPrecision::fp32:
      break;
  }
  return "fp32";
}

void set_matmul_precision(MatmulPrecision p) {
  g_precision.store(p, std::memory_order_relaxed);
}

MatmulPrecision matmul_precision() {
  return g_precision.load(std::memory_order_relaxed);
}

}  // namespace tsp::kernels

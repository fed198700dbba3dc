// The precision of the fp32 linear layers' matrix products, a process-wide setting in the spirit of PyTorch's
// torch.set_float32_matmul_precision: "fp32" multiplies on OpenBLAS in fp32; "bf16" rounds both operands to
// bf16 (round to nearest even) and multiplies on oneDNN with fp32 accumulation and an fp32 result — AMX's
// rate on machines that have it. Everything else (storage, communication, norms, softmax, the loss, the
// optimizer) stays fp32, so this is the compute half of a bf16 policy: the products autocast would run in
// bf16, nothing more. "auto" picks fp32 or bf16 per linear product by measuring both on this machine the
// first time a product of that kind and shape is met (kernels/product_paths.h): bf16 is not faster
// everywhere (oneDNN's bf16 without AMX ran at 0.66x of sgemm on AVX512-BF16). fp64 products ignore the
// setting (fp64 is the reference). It is set once, before any product, by the command line
// (--matmul-precision) and read by kernels::linear_forward / linear_backward.
#pragma once

#include <string>

namespace tsp::kernels {

enum class MatmulPrecision { fp32, bf16, automatic };

// Throws UsageError naming the value and the allowed ones, or, for bf16, naming the CPU's ISA when oneDNN
// has no bf16 product on it (kernels::onednn::bf16_supported()). "auto" is accepted on every CPU: without a
// bf16 product it multiplies every product in fp32.
MatmulPrecision parse_matmul_precision(const std::string& s);
std::string to_string(MatmulPrecision p);

void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();

// Sets a precision for a scope and restores the previous one (tests).
class ScopedMatmulPrecision {
 public:
  explicit ScopedMatmulPrecision(MatmulPrecision p) : prev_(matmul_precision()) { set_matmul_precision(p); }
  ~ScopedMatmulPrecision() { set_matmul_precision(prev_); }
  ScopedMatmulPrecision(const ScopedMatmulPrecision&) = delete;
  ScopedMatmulPrecision& operator=(const ScopedMatmulPrecision&) = delete;

 private:
  MatmulPrecision prev_;
};

}  // namespace tsp::kernels

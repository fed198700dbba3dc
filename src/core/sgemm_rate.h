// The machine's fp32 GEMM ceiling, measured in the calling process: benchmarks divide their model FLOP/s by
// it so that a ratio stays meaningful while absolute rates drift ±30 % run to run on a shared machine.
#pragma once

namespace tsp {

// FLOP/s of cblas_sgemm on square n×n×n row-major products, averaged over `reps` timed calls after one
// untimed call (which pays the page faults of the fresh operands and OpenBLAS's buffer setup).
double sgemm_flops_per_s(int n = 2048, int reps = 5);

}  // namespace tsp

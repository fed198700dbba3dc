// Matrix products on oneDNN (Debian's libdnnl 2.6): C[m,n] = alpha·op(A)·op(B) + beta·C, row-major with
// leading dimensions exactly as kernels::gemm, where A and B are fp32 or bf16 (bit patterns, kernels/bf16.h)
// and C and the accumulation are fp32. Transposes are strides, never copies, so the linear layer's three
// products (Y = X·Wᵀ, dX = dY·W, dW = dYᵀ·X) and the flash-attention tile products need no transposing copy.
//
// Primitives are created once per (types, shape, strides, alpha, beta, threads) and cached per thread, with a
// user-managed scratchpad per thread that the thread's primitives share (it runs one at a time): a primitive
// shared by threads with oneDNN's library-managed scratchpad gives wrong results (../shared/docs/onednn.md).
// Called inside an OpenMP team oneDNN runs on the calling thread only; outside one it uses the OpenMP threads
// tsp chose (core/threading.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace tsp::kernels::onednn {

// any_shape: one primitive (oneDNN's runtime dimensions, its gemm:jit kernel) serves every m, n, k of the
// same orientation, strides, alpha and beta, so callers with unboundedly many shapes — the edge tiles of
// attention over every sequence length it meets — keep a bounded cache (each fixed-shape primitive holds
// ~0.2 MiB of JIT code and descriptors). Which path a product takes must depend on its shape alone, never on
// history: the two paths round differently, and a resumed run must repeat the bits of an uninterrupted one.
void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
            int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc,
            bool any_shape = false);
void matmul(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const uint16_t* a,
            int64_t lda, const uint16_t* b, int64_t ldb, float beta, float* c, int64_t ldc,
            bool any_shape = false);

// A bf16 weight W [out, in] (row-major, the linear layer's) kept in the layout oneDNN's product Y = X·Wᵀ asks
// for (format_tag::any: on AVX512-BF16 and AMX a VNNI-packed, blocked layout), so that the product does not
// pack it on every call (docs/performance.md, "Blocked weights"). Made once, by a reorder from the plain
// weight; its bytes are counted under the allocator's `parameters`.
struct BlockedWeight;
struct BlockedWeightDeleter {
  void operator()(BlockedWeight* w) const;
};
using BlockedWeightPtr = std::unique_ptr<BlockedWeight, BlockedWeightDeleter>;
// Null when oneDNN keeps this shape's weight plain (nothing to gain) or has no bf16 product.
BlockedWeightPtr make_blocked_weight(const uint16_t* w, int64_t out, int64_t in);
int64_t blocked_weight_bytes(const BlockedWeight& w);
// y[m, out] (rows ldy apart) = x[m, in] · Wᵀ + beta · y with W blocked, x bf16 with rows `in` apart. Returns
// false, having done nothing, when oneDNN's product for m rows reads another layout (the caller then runs the
// plain product).
bool matmul_blocked(int64_t m, const uint16_t* x, const BlockedWeight& w, float beta, float* y, int64_t ldy);
// Products matmul_blocked has run since the process started (tests: the blocked copies are used).
int64_t blocked_products();

// The instruction set oneDNN dispatches to on this CPU, in oneDNN's words: "avx512_core_amx" (AMX tiles),
// "avx512_core_bf16" (vdpbf16ps), "avx512_core", "avx2", ... ONEDNN_MAX_CPU_ISA caps it.
std::string cpu_isa();
// The kernel oneDNN chooses for one product of this shape (its impl_info_str, e.g.
// "brg:avx512_core_amx_bf16"): bf16 inputs or fp32.
std::string implementation(bool bf16, int64_t m, int64_t n, int64_t k);
// Whether oneDNN has a bf16 product on this CPU (2.6 needs AVX-512: none on AVX2-only machines); the bf16
// matmul throws without one.
bool bf16_supported();
// "oneDNN 2.6.3 on avx512_core_amx" for run headers (the "isa" field of --json is cpu_isa()).
std::string summary();
// The rate of an n x n x n bf16 product with fp32 output on oneDNN, measured like sgemm_flops_per_s
// (core/sgemm_rate.h): the ceiling a bf16 run's matrix products are compared with; 0 without
// bf16_supported().
double bf16_gemm_flops_per_s(int n, int reps);
// Outside an OpenMP team, a product of fewer than this many FLOPs (2mnk) runs on the calling thread alone:
// under the passive wait policy tsp sets (core/threading.h) waking the team's sleeping threads costs tens of
// microseconds, more than such a product takes on one thread (bench/bench_small_products;
// docs/performance.md, "Small products"). set_one_thread_flops changes the bound and returns the previous one
// (0: always the team; benchmarks and tests).
inline constexpr double kDefaultOneThreadFlops = 5e6;
double set_one_thread_flops(double flops);
// Primitives cached by the calling thread (tests check that repeated shapes reuse them).
size_t cached_primitives();

}  // namespace tsp::kernels::onednn

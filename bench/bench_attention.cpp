// Causal attention forward/backward throughput at training size, reported against the SGEMM rate measured in
// the same process (the ceiling the blocked kernel's tile products run at), with the fp32 tile products on
// oneDNN (the default) and on OpenBLAS, and the bf16 tile products (--matmul-precision bf16) on oneDNN, one
// after the other, and their ratios.
//
// Usage: bench_attention [seq_len] [block_q block_k]    (defaults: 4096, the library's AttentionBlocks{})
#include <cblas.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "core/threading.h"
#include "kernels/attention.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"

namespace {

using tsp::kernels::AttentionBlocks;
using tsp::kernels::AttentionShape;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best of `reps` after one warm-up: the noise on a shared machine only ever adds time.
template <class F>
double best_seconds(int reps, F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}

double sgemm_gflops() {
  const int n = 2048;
  std::vector<float> a(size_t(n) * n, 0.5f), b(size_t(n) * n, 0.25f), c(size_t(n) * n);
  const double s = best_seconds(3, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f,
                c.data(), n);
  });
  return 2.0 * n * double(n) * n / s * 1e-9;
}

struct Times {
  double fwd, bwd;
};

Times bench_head_dim(int64_t seq, int64_t head_dim, const AttentionBlocks& blocks, double gemm_rate,
                     bool bf16 = false) {
  tsp::kernels::ScopedMatmulPrecision precision(bf16 ? tsp::kernels::MatmulPrecision::bf16
                                                     : tsp::kernels::MatmulPrecision::fp32);
  const AttentionShape s{seq, seq, 8, 8, head_dim};
  const int64_t n = seq * s.n_heads * head_dim;
  std::mt19937_64 rng(1);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> q(n), k(n), v(n), dout(n), out(n), lse(seq * s.n_heads), dq(n), dk(n), dv(n);
  for (auto* x : {&q, &k, &v, &dout})
    for (float& e : *x) e = dist(rng);
  std::vector<int64_t> pos(seq);
  std::iota(pos.begin(), pos.end(), 0);
  const double scale = 1.0 / std::sqrt(double(head_dim));

  const double fwd = best_seconds(3, [&] {
    tsp::kernels::attention_forward(out.data(), lse.data(), q.data(), k.data(), v.data(), pos.data(),
                                    pos.data(), s, scale, blocks);
  });
  const double bwd = best_seconds(3, [&] {
    tsp::kernels::attention_backward(dq.data(), dk.data(), dv.data(), dout.data(), q.data(), k.data(),
                                     v.data(), out.data(), lse.data(), pos.data(), pos.data(), s, scale,
                                     blocks);
  });
  // Causal: half of the nq x nk score matrix, two products (QK^T and PV) of 2 FLOPs per multiply-add.
  const double fwd_flops = 2.0 * 2.0 * double(seq) * double(seq) / 2.0 * double(s.n_heads) * double(head_dim);
  const double bwd_flops = 2.5 * fwd_flops;
  const double fwd_rate = fwd_flops / fwd * 1e-9, bwd_rate = bwd_flops / bwd * 1e-9;
  std::printf(
      "S=%lld heads=%lld d=%lld blocks=%lldx%lld tiles=%-6s forward %8.2f ms %7.1f GFLOP/s (%3.0f%% of "
      "sgemm)  "
      "backward %8.2f ms %7.1f GFLOP/s (%3.0f%% of sgemm)\n",
      static_cast<long long>(seq), static_cast<long long>(s.n_heads), static_cast<long long>(head_dim),
      static_cast<long long>(blocks.block_q), static_cast<long long>(blocks.block_k),
      bf16                                                    ? "bf16"
      : blocks.products == tsp::kernels::TileProducts::onednn ? "onednn"
                                                              : "blas",
      fwd * 1e3, fwd_rate, 100.0 * fwd_rate / gemm_rate, bwd * 1e3, bwd_rate, 100.0 * bwd_rate / gemm_rate);
  return {fwd, bwd};
}

}  // namespace

int main(int argc, char** argv) {
  tsp::use_passive_openmp_wait(argv);  // as tsp does (core/threading.h)
  tsp::apply_single_process_threads();
  // Keep freed workspace in the heap: fresh pages cost ~14 us each on this VM (see docs/machine.md).
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  const int64_t seq = argc > 1 ? std::atoll(argv[1]) : 4096;
  AttentionBlocks blocks;
  if (argc > 3) blocks.block_q = std::atoll(argv[2]), blocks.block_k = std::atoll(argv[3]);

  const double gemm_rate = sgemm_gflops();
  std::printf("cblas_sgemm 2048x2048x2048: %.1f GFLOP/s (OpenBLAS threads %d)\n", gemm_rate,
              openblas_get_num_threads());
  std::printf("oneDNN ISA: %s\n", tsp::kernels::onednn::cpu_isa().c_str());
  for (int64_t d : {64, 32}) {
    AttentionBlocks with_blas = blocks;
    with_blas.products = tsp::kernels::TileProducts::blas;
    const Times o = bench_head_dim(seq, d, blocks, gemm_rate);
    const Times b = bench_head_dim(seq, d, with_blas, gemm_rate);
    std::printf("d=%lld  oneDNN tiles vs OpenBLAS tiles: forward %.2fx, backward %.2fx faster\n",
                static_cast<long long>(d), b.fwd / o.fwd, b.bwd / o.bwd);
    if (!tsp::kernels::onednn::bf16_supported()) continue;
    const Times h = bench_head_dim(seq, d, blocks, gemm_rate, /*bf16=*/true);
    std::printf("d=%lld  bf16 tiles vs fp32 oneDNN tiles: forward %.2fx, backward %.2fx faster\n",
                static_cast<long long>(d), o.fwd / h.fwd, o.bwd / h.bwd);
  }
  return 0;
}

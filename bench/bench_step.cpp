// One training step (forward + backward + AdamW) of a preset on one rank, against the machine's own GEMM rate
// measured in the same process: the ratio says how close the whole step runs to the BLAS ceiling.
//
//   build/release/bench/bench_step [--preset small | --config FILE] [--seq-len 4096] [--batch 1] [--steps 3]
//                                  [--attention-tiles onednn | blas | both]
//
// --attention-tiles both times the same steps with the fp32 flash-attention tile products on oneDNN (the
// default) and on OpenBLAS, in this one process, and prints the ratio.
//
// Model FLOPs count the matrix products only: 6 · (matrix parameters incl. the LM head) · tokens, plus causal
// attention 7 · S² · q_dim per layer per sequence (forward QKᵀ and PV on the causal half: 2·S²·q_dim; the
// backward recomputes the scores and forms dP, dS·K, dSᵀ·Q and Pᵀ·dO: 5·S²·q_dim).
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "bench/bench_run.h"
#include "core/memory.h"
#include "core/sgemm_rate.h"
#include "core/threading.h"
#include "kernels/attention.h"
#include "kernels/cross_entropy.h"
#include "kernels/onednn_matmul.h"
#include "model/config.h"
#include "model/params.h"
#include "model/transformer.h"
#include "parallel/single/single.h"
#include "train/optimizer.h"

using namespace tsp;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  tsp::use_passive_openmp_wait(argv);  // as tsp does (core/threading.h)
  const tsp::ThreadPlan threads = tsp::apply_single_process_threads();
  std::string preset = "small", config, tiles = "onednn";
  int64_t S = 4096, B = 1, steps = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--preset")
      preset = argv[i + 1];
    else if (k == "--config")
      config = argv[i + 1];
    else if (k == "--seq-len")
      S = std::stoll(argv[i + 1]);
    else if (k == "--batch")
      B = std::stoll(argv[i + 1]);
    else if (k == "--steps")
      steps = std::stoll(argv[i + 1]);
    else if (k == "--attention-tiles")
      tiles = argv[i + 1];
    else {
      std::fprintf(
          stderr,
          "unknown option %s (allowed: --preset --config --seq-len --batch --steps --attention-tiles)\n",
          k.c_str());
      return 2;
    }
  }
  if (tiles != "onednn" && tiles != "blas" && tiles != "both") {
    std::fprintf(stderr, "--attention-tiles %s: allowed onednn, blas, both\n", tiles.c_str());
    return 2;
  }
  const ModelConfig c = config.empty() ? preset_config(preset) : load_config(config);
  if (!config.empty()) preset = config;
  const double gemm = sgemm_flops_per_s(2048, 5) / 1e9;

  ModelParams<float> p(c, ShardSpec::full(c));
  p.init(1);
  SingleStrategy<float> single;
  Transformer<float> model(p, single);
  AdamW<float> opt(p, {});
  std::vector<int32_t> tokens(size_t(B * S)), targets(size_t(B * S));
  for (int64_t i = 0; i < B * S; ++i) {
    tokens[size_t(i)] = int32_t((i * 7919) % c.vocab_size);
    targets[size_t(i)] = int32_t(((i + 1) * 7919) % c.vocab_size);
  }
  auto step = [&] {
    p.zero_grads();
    model.forward(tokens.data(), targets.data(), B, S);
    model.backward();
    opt.step(single, 1e-4, 1.0);
  };
  auto timed = [&](kernels::TileProducts products) {
    kernels::AttentionBlocks blocks;
    blocks.products = products;
    kernels::set_default_attention_blocks(blocks);
    step();  // warm-up: allocations, first touch of every buffer, the tile primitives
    mem_reset_peaks();
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t s = 0; s < steps; ++s) step();
    return seconds_since(t0) / double(steps);
  };
  double blas_sec = 0;
  if (tiles == "blas" || tiles == "both") blas_sec = timed(kernels::TileProducts::blas);
  const double sec = tiles == "blas" ? blas_sec : timed(kernels::TileProducts::onednn);

  const int64_t L = c.num_hidden_layers;
  const double flops = model_flops_per_step(c, B, S, /*forward_only=*/false);
  const double model_gflops = flops / sec / 1e9;
  std::printf("bench_step | preset %s | batch %lld x seq %lld | %lld timed steps\n", preset.c_str(),
              (long long)B, (long long)S, (long long)steps);
  std::printf("threads: %s\n", tsp::thread_summary(threads).c_str());
  std::printf("step time            %10.3f s\n", sec);
  std::printf("tokens/s             %10.0f\n", double(B * S) / sec);
  std::printf("model GFLOP/s        %10.1f   (%.1f GFLOP per step)\n", model_gflops, flops / 1e9);
  std::printf("cblas_sgemm GFLOP/s  %10.1f   (2048^3, same process)\n", gemm);
  std::printf("ratio                %10.1f %%\n", 100.0 * model_gflops / gemm);
  std::printf("attention tiles      %10s   (%s)\n", tiles == "blas" ? "OpenBLAS" : "oneDNN",
              kernels::onednn::summary().c_str());
  if (tiles == "both")
    std::printf("step with OpenBLAS tiles %.3f s: oneDNN tiles %.2fx faster (same process)\n", blas_sec,
                blas_sec / sec);
  const MemStats m = mem_stats();
  std::printf("peak memory per category (MiB):\n");
  for (int k = 0; k < kMemCategories; ++k)
    std::printf("  %-14s %10.2f\n", std::string(mem_name(Mem(k))).c_str(),
                double(m.peak[size_t(k)]) / 1048576.0);
  std::printf("  %-14s %10.2f\n", "total", double(m.peak_total) / 1048576.0);
  std::printf("  %-14s %10.2f\n", "VmHWM", double(vm_hwm_bytes()) / 1048576.0);
  // Attention keeps O(S·d) per head: q, k, v, o and the log-sum-exp, never an S×S matrix.
  const double attn_saved =
      double(L) * double(B * S) * double(2 * c.q_dim() + 2 * c.kv_dim() + c.num_attention_heads) * 4;
  std::printf("attention activations saved: %.2f MiB (S×S scores would be %.2f MiB per layer and head)\n",
              attn_saved / 1048576.0, double(S) * double(S) * 4 / 1048576.0);
  return 0;
}

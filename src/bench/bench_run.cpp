#include "bench/bench_run.h"

#include "bench/decode_bench.h"

#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "comm/comm_report.h"
#include "core/check.h"
#include "core/memory.h"
#include "core/precision.h"
#include "core/run_dtype.h"
#include "core/sgemm_rate.h"
#include "core/trace.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "kernels/product_paths.h"
#include "model/params.h"
#include "model/transformer.h"
#include "train/optimizer.h"

namespace tsp {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Random tokens from a fixed seed (the same batch on every rank; each rank takes its own tokens); the target
// of a position is the next token of its sequence, the last position's a fresh random token.
void make_batch(const BenchOptions& o, std::vector<int32_t>& tokens, std::vector<int32_t>& targets) {
  const int64_t n = o.batch * o.seq_len;
  std::mt19937_64 rng(o.seed + 1);
  const auto vocab = uint64_t(o.model.vocab_size);
  tokens.resize(size_t(n));
  targets.resize(size_t(n));
  for (auto& t : tokens) t = int32_t(rng() % vocab);
  for (int64_t i = 0; i < n; ++i)
    targets[size_t(i)] = (i + 1) % o.seq_len == 0 ? int32_t(rng() % vocab) : tokens[size_t(i + 1)];
}

// Every step moves the same bytes, so the totals of the timed steps divide exactly by their number.
CommStats per_step(const CommStats& total, int64_t steps) {
  CommStats out = total;
  for (auto& [phase, labels] : out)
    for (auto& [label, c] : labels) {
      c.calls /= steps;
      c.payload_bytes /= steps;
      c.recv_bytes /= steps;
      c.seconds /= double(steps);
    }
  return out;
}

// What one rank measured, and the scalars the job-wide summary is made of.
struct RankResult {
  nlohmann::json entry;
  double loss = 0;
};

// Builds the layout, runs the warm-up and the timed steps, and measures; every buffer of the layout is freed
// when this returns.
template <class T>
RankResult measure_rank(const BenchOptions& o, Communicator& world) {
  const ModelConfig& c = o.model;
  auto strategy = make_strategy<T>(o.strategy, world, o.layout);
  strategy->validate(c, o.batch, o.seq_len);
  // The GEMM ceiling of every rank at once (ranks share the cores, as they do in the steps), before the model
  // exists; its operands are handed back to the OS so that they do not count in the layout's VmHWM.
  world.barrier();
  double sgemm = sgemm_flops_per_s(o.sgemm_n, o.sgemm_reps);
  world.barrier();
  double gemm_bf16 = kernels::onednn::bf16_gemm_flops_per_s(o.sgemm_n, o.sgemm_reps);
  malloc_trim(0);
  ModelParams<T> params(c, strategy->shard_spec(c), /*with_grads=*/!o.forward_only);
  params.init(o.seed);
  // The optimizer is real so that its state is measured (and its communication under ZeRO-1 or clipping).
  std::unique_ptr<AdamW<T>> opt;
  if (!o.forward_only) opt = std::make_unique<AdamW<T>>(params, kernels::AdamWHyper{}, strategy.get());
  Transformer<T> model(params, *strategy);
  std::vector<int32_t> tokens, targets;
  make_batch(o, tokens, targets);

  double loss = 0;
  auto step = [&] {
    if (o.forward_only) {
      loss = model.forward(tokens.data(), targets.data(), o.batch, o.seq_len).loss;
      return;
    }
    params.zero_grads();
    loss = model.forward(tokens.data(), targets.data(), o.batch, o.seq_len).loss;
    model.backward();
    strategy->set_phase("optimizer");
    opt->step(*strategy, 1e-4, 1.0);
  };
  for (int64_t s = 0; s < o.warmup; ++s) {
    TraceSpan span("bench.warmup", "bench");
    step();
  }

  // From here on only the timed steps count: communication, allocator peaks and the resident high-water mark.
  Communicator* comm = strategy->comm();
  if (comm) comm->reset_stats();
  mem_reset_peaks();
  reset_vm_hwm();
  world.barrier();  // all ranks start the first timed step together
  double step_sum = 0, idle_sum = 0;
  for (int64_t s = 0; s < o.steps; ++s) {
    const auto t0 = Clock::now();
    {
      TraceSpan span("bench.step", "bench");
      step();
    }
    const auto t1 = Clock::now();
    {
      // Waiting here for the slowest rank is the step's idle time; barrier() is not counted as communication.
      TraceSpan span("bench.idle", "idle");
      world.barrier();
    }
    const auto t2 = Clock::now();
    step_sum += seconds_between(t0, t2);
    idle_sum += seconds_between(t1, t2);
  }
  const MemStats m = mem_stats();
  const int64_t hwm = vm_hwm_bytes();
  // The ceilings again after the steps (their memory no longer counts), keeping the better of the two: on a
  // shared machine one measurement can fall in a slow spell and flatter the model's ratio to it.
  world.barrier();
  sgemm = std::max(sgemm, sgemm_flops_per_s(o.sgemm_n, o.sgemm_reps));
  world.barrier();
  gemm_bf16 = std::max(gemm_bf16, kernels::onednn::bf16_gemm_flops_per_s(o.sgemm_n, o.sgemm_reps));

  const CommStats comm_step = comm ? per_step(comm->stats(), o.steps) : CommStats{};
  double exposed = 0;
  int64_t recv = 0, payload = 0;
  for (const auto& [phase, labels] : comm_step)
    for (const auto& [label, cnt] : labels) {
      exposed += cnt.seconds;
      recv += cnt.recv_bytes;
      payload += cnt.payload_bytes;
    }
  const double step_s = step_sum / double(o.steps), idle_s = idle_sum / double(o.steps);

  nlohmann::json mem;
  for (int k = 0; k < kMemCategories; ++k) mem[std::string(mem_name(Mem(k)))] = m.peak[size_t(k)];
  mem["total"] = m.peak_total;
  mem["vmhwm"] = hwm;
  RankResult r;
  r.loss = loss;
  r.entry = {{"rank", world.rank()},
             {"memory_peak_bytes", mem},
             {"comm", comm_stats_json(comm_step)},
             {"comm_recv_bytes_per_step", recv},
             {"comm_payload_bytes_per_step", payload},
             {"seconds",
              {{"step", step_s},
               {"compute", step_s - exposed - idle_s},
               {"comm_exposed", exposed},
               {"idle", idle_s}}},
             {"sgemm_flops_per_s", sgemm},
             {"gemm_bf16_flops_per_s", gemm_bf16}};
  return r;
}

}  // namespace

nlohmann::json layout_json(const StrategyOptions& l) {
  return {{"tp", l.tp}, {"sp", l.sp},       {"sequence_parallel", l.sequence_parallel},
          {"dp", l.dp}, {"zero1", l.zero1}, {"keep_gathered_kv", l.keep_gathered_kv}};
}

// Lengths first, then the texts packed into equal int64 blocks (the Communicator moves numbers, not bytes).
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine) {
  const int P = comm.size();
  int64_t len = int64_t(mine.size());
  std::vector<int64_t> lens(static_cast<size_t>(P));
  comm.all_gather("bench.report_sizes", &len, lens.data(), 1);
  const int64_t words = std::max<int64_t>(1, (*std::max_element(lens.begin(), lens.end()) + 7) / 8);
  std::vector<int64_t> block(size_t(words), 0), all(size_t(words * P));
  std::memcpy(block.data(), mine.data(), mine.size());
  comm.all_gather("bench.report", block.data(), all.data(), words);
  std::vector<std::string> out;
  for (int r = 0; r < P; ++r)
    out.emplace_back(reinterpret_cast<const char*>(all.data() + size_t(r * words)), size_t(lens[size_t(r)]));
  return out;
}

double model_flops_per_step(const ModelConfig& c, int64_t batch, int64_t seq_len, bool forward_only) {
  const double h = double(c.hidden_size), L = double(c.num_hidden_layers);
  const double matrix_params = L * (2.0 * h * double(c.q_dim()) + 2.0 * h * double(c.kv_dim()) +
                                    3.0 * h * double(c.intermediate_size)) +
                               double(c.vocab_size) * h;
  const double tokens = double(batch) * double(seq_len);
  // Causal attention per layer and sequence: QKᵀ and PV over the lower triangle, S²/2·q_dim multiply-adds
  // each = 2·S²·q_dim FLOPs forward; the backward recomputes the scores and forms dP, dS·K, dSᵀ·Q, Pᵀ·dO.
  const double attn = double(seq_len) * double(seq_len) * double(c.q_dim()) * L * double(batch);
  return forward_only ? 2.0 * matrix_params * tokens + 2.0 * attn : 6.0 * matrix_params * tokens + 7.0 * attn;
}

void validate_bench_options(const BenchOptions& o) {
  o.model.validate();
  TSP_REQUIRE(o.steps >= 1, "--steps must be >= 1 (timed steps), got {}", o.steps);
  TSP_REQUIRE(o.warmup >= 0, "--warmup must be >= 0 (untimed steps before the timed ones), got {}", o.warmup);
  TSP_REQUIRE(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  TSP_REQUIRE(o.seq_len >= 1, "--seq-len must be >= 1, got {}", o.seq_len);
  TSP_REQUIRE(supported_dtype(o.dtype), "{}", unsupported_dtype_message(o.dtype));
  TSP_REQUIRE(o.sgemm_n >= 1 && o.sgemm_reps >= 1, "--sgemm-n and --sgemm-reps must be >= 1, got {} and {}",
              o.sgemm_n, o.sgemm_reps);
}

nlohmann::json run_bench(const BenchOptions& o, Communicator& world) {
  if (o.decode) return run_decode_bench(o, world);
  validate_bench_options(o);
  if (!o.trace.empty()) trace_enable(world.rank());
  const bool overlap_before = Communicator::overlap();
  Communicator::set_overlap(o.overlap);
  RankResult r = o.dtype == "float64" ? measure_rank<double>(o, world) : measure_rank<float>(o, world);
  Communicator::set_overlap(overlap_before);
  // The layout's buffers are gone; return their pages too, so that a next layout starts from a low VmHWM.
  malloc_trim(0);

  Communicator report = world.split(0, world.rank());
  nlohmann::json per_rank = nlohmann::json::array();
  for (const std::string& s : all_gather_strings(report, r.entry.dump()))
    per_rank.push_back(nlohmann::json::parse(s));

  double step = 0, sgemm_sum = 0, bf16_sum = 0;
  int64_t mem_max = 0, recv_max = 0;
  for (const auto& e : per_rank) {
    step = std::max(step, e["seconds"]["step"].get<double>());
    sgemm_sum += e["sgemm_flops_per_s"].get<double>();
    bf16_sum += e["gemm_bf16_flops_per_s"].get<double>();
    mem_max = std::max(mem_max, e["memory_peak_bytes"]["total"].get<int64_t>());
    recv_max = std::max(recv_max, e["comm_recv_bytes_per_step"].get<int64_t>());
  }
  const double flops = model_flops_per_step(o.model, o.batch, o.seq_len, o.forward_only);
  const int64_t tokens = o.batch * o.seq_len;
  nlohmann::json doc = {{"strategy", o.strategy},
                        {"label", o.label.empty() ? o.strategy : o.label},
                        {"layout", layout_json(o.layout)},
                        {"mode", o.forward_only ? "forward" : "train"},
                        {"ranks", world.size()},
                        {"dtype", o.dtype},
                        {"optimizer_dtype", optimizer_dtype_name()},
                        {"grad_reduce_dtype", grad_reduce_dtype_name()},
                        {"seq_len", o.seq_len},
                        {"batch", o.batch},
                        {"steps", o.steps},
                        {"warmup", o.warmup},
                        {"loss", r.loss},
                        {"tokens_per_step", tokens},
                        {"step_seconds", step},
                        {"tokens_per_s", double(tokens) / step},
                        {"model_flops_per_step", flops},
                        {"model_flops_per_s", flops / step},
                        {"sgemm_flops_per_s", sgemm_sum},
                        {"gemm_bf16_flops_per_s", bf16_sum},
                        {"sgemm_n", o.sgemm_n},
                        {"isa", kernels::onednn::cpu_isa()},
                        {"model_flops_ratio", flops / step / sgemm_sum},
                        {"matmul_precision", kernels::to_string(kernels::matmul_precision())},
                        {"product_paths", kernels::matmul_precision() == kernels::MatmulPrecision::automatic
                                              ? kernels::product_paths_json()
                                              : nlohmann::json()},
                        {"overlap", o.overlap},
                        {"model_flops_ratio_bf16_gemm", bf16_sum > 0 ? flops / step / bf16_sum : 0.0},
                        {"memory_peak_bytes_max", mem_max},
                        {"comm_recv_bytes_per_step_max", recv_max},
                        {"per_rank", per_rank}};
  if (!o.trace.empty()) {
    trace_write(trace_path_for_rank(o.trace, world.rank(), world.size()));
    doc["trace"] = o.trace;
    doc["trace_files"] = trace_paths(o.trace, world.size());
  }
  return doc;
}

}  // namespace tsp

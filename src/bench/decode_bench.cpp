#include "bench/decode_bench.h"

#include <malloc.h>

#include <algorithm>
#include <random>

#include "comm/comm_report.h"
#include "core/check.h"
#include "core/memory.h"
#include "core/run_dtype.h"
#include "core/trace.h"
#include "infer/generator.h"
#include "kernels/matmul_precision.h"
#include "kernels/onednn_matmul.h"
#include "model/params.h"

namespace tsp {

namespace {

// The q-quantile of v (nearest rank).
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t k = size_t(std::ceil(q * double(v.size()))) - (q > 0 ? 1 : 0);
  return v[std::min(k, v.size() - 1)];
}

template <class T>
nlohmann::json measure_rank(const BenchOptions& o, Communicator& world) {
  const ModelConfig& c = o.model;
  auto strategy = make_strategy<T>(o.strategy, world, o.layout);
  ModelParams<T> params(c, strategy->shard_spec(c), /*with_grads=*/false);
  params.init(o.seed);
  Generator<T> gen(params, *strategy, o.kv);
  gen.freeze_bf16_weights = o.freeze_bf16_weights;
  gen.blocked_weights = o.blocked_weights;
  std::mt19937_64 rng(o.seed + 1);
  std::vector<std::vector<int32_t>> prompts(size_t(o.batch), std::vector<int32_t>(size_t(o.prompt_len)));
  for (auto& p : prompts)
    for (auto& t : p) t = int32_t(rng() % uint64_t(c.vocab_size));
  GenerateOptions g;
  g.max_new_tokens = o.new_tokens;  // greedy, no stop token: every sequence runs all its steps
  for (int64_t w = 0; w < o.warmup; ++w) {
    TraceSpan span("bench.warmup", "bench");
    gen.generate(prompts, g);
  }
  Communicator* comm = strategy->comm();
  if (comm) comm->reset_stats();
  mem_reset_peaks();
  reset_vm_hwm();
  world.barrier();
  {
    TraceSpan span("bench.generate", "bench");
    gen.generate(prompts, g);
  }
  const GenerateStats& st = gen.stats();
  const MemStats m = mem_stats();
  nlohmann::json mem;
  for (int k = 0; k < kMemCategories; ++k) mem[std::string(mem_name(Mem(k)))] = m.peak[size_t(k)];
  mem["total"] = m.peak_total;
  mem["vmhwm"] = vm_hwm_bytes();
  // The decode's counters per step (every step moves the same bytes: the batch stays whole).
  CommStats stats = comm ? comm->stats() : CommStats{};
  int64_t decode_recv = 0;
  double decode_comm_s = 0;
  if (stats.count("decode"))
    for (auto& [label, cnt] : stats["decode"]) {
      cnt.calls /= st.decode_steps;
      cnt.payload_bytes /= st.decode_steps;
      cnt.recv_bytes /= st.decode_steps;
      cnt.seconds /= double(st.decode_steps);
      decode_recv += cnt.recv_bytes;
      decode_comm_s += cnt.seconds;
    }
  const double tpot = st.decode_seconds / double(st.decode_steps);
  return {
      {"rank", world.rank()},
      {"memory_peak_bytes", mem},
      {"comm", comm_stats_json(stats)},
      {"decode_comm_recv_bytes_per_step", decode_recv},
      {"kv_cache_bytes", st.kv_cache_bytes},
      {"frozen_bf16_bytes", st.frozen_bf16_bytes},
      {"blocked_bf16_bytes", st.blocked_bf16_bytes},
      {"blocked_bf16_weights", st.blocked_bf16_weights},
      {"kv_context", st.context},
      {"ttft_s", st.prefill_seconds},
      {"tpot_s",
       {{"mean", tpot}, {"p50", quantile(st.step_seconds, 0.5)}, {"p99", quantile(st.step_seconds, 0.99)}}},
      {"decode_comm_exposed_s_per_step", decode_comm_s},
      {"decode_steps", st.decode_steps}};
}

}  // namespace

void validate_decode_bench_options(const BenchOptions& o) {
  o.model.validate();
  TSP_REQUIRE(o.warmup >= 0, "--warmup must be >= 0, got {}", o.warmup);
  TSP_REQUIRE(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  TSP_REQUIRE(o.prompt_len >= 1, "--prompt-len must be >= 1, got {}", o.prompt_len);
  TSP_REQUIRE(o.new_tokens >= 2, "--new-tokens must be >= 2 (the first comes from the prefill), got {}",
              o.new_tokens);
  o.model.require_sequence_length(
      o.prompt_len + o.new_tokens,
      fmt::format("--prompt-len {} + --new-tokens {}", o.prompt_len, o.new_tokens));
  TSP_REQUIRE(supported_dtype(o.dtype), "{}", unsupported_dtype_message(o.dtype));
}

nlohmann::json run_decode_bench(const BenchOptions& o, Communicator& world) {
  validate_decode_bench_options(o);
  if (!o.trace.empty()) trace_enable(world.rank());
  const nlohmann::json mine =
      o.dtype == "float64" ? measure_rank<double>(o, world) : measure_rank<float>(o, world);
  malloc_trim(0);
  Communicator report = world.split(0, world.rank());
  nlohmann::json per_rank = nlohmann::json::array();
  for (const std::string& s : all_gather_strings(report, mine.dump()))
    per_rank.push_back(nlohmann::json::parse(s));
  // The job is as fast as its slowest rank.
  double ttft = 0, mean = 0, p50 = 0, p99 = 0;
  int64_t mem_max = 0, recv_max = 0;
  for (const auto& e : per_rank) {
    ttft = std::max(ttft, e["ttft_s"].get<double>());
    mean = std::max(mean, e["tpot_s"]["mean"].get<double>());
    p50 = std::max(p50, e["tpot_s"]["p50"].get<double>());
    p99 = std::max(p99, e["tpot_s"]["p99"].get<double>());
    mem_max = std::max(mem_max, e["memory_peak_bytes"]["total"].get<int64_t>());
    recv_max = std::max(recv_max, e["decode_comm_recv_bytes_per_step"].get<int64_t>());
  }
  nlohmann::json doc = {{"strategy", o.strategy},
                        {"label", o.label.empty() ? o.strategy : o.label},
                        {"layout", layout_json(o.layout)},
                        {"kv_layout", o.strategy == "tsp" ? kv_layout_name(o.kv.kv_layout) : std::string("")},
                        {"mode", "decode"},
                        {"ranks", world.size()},
                        {"dtype", o.dtype},
                        {"matmul_precision", kernels::to_string(kernels::matmul_precision())},
                        {"frozen_bf16_weights", o.freeze_bf16_weights},
                        {"blocked_weights", o.blocked_weights},
                        {"isa", kernels::onednn::cpu_isa()},
                        {"batch", o.batch},
                        {"prompt_len", o.prompt_len},
                        {"new_tokens", o.new_tokens},
                        {"warmup", o.warmup},
                        {"ttft_s", ttft},
                        {"tpot_s", {{"mean", mean}, {"p50", p50}, {"p99", p99}}},
                        {"output_tokens_per_s", double(o.batch) / mean},
                        {"memory_peak_bytes_max", mem_max},
                        {"decode_comm_recv_bytes_per_step_max", recv_max},
                        {"per_rank", per_rank}};
  if (!o.trace.empty()) {
    trace_write(trace_path_for_rank(o.trace, world.rank(), world.size()));
    doc["trace"] = o.trace;
  }
  return doc;
}

}  // namespace tsp

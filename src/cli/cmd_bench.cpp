// tsp bench: per-rank memory, communication and time split of training steps (or prefill) of one layout, or
// of several layouts side by side with --compare. Definitions of every number: docs/bench.md.
#include <cstdio>

#include "bench/bench_run.h"
#include "bench/compare.h"
#include "bench/device_profile.h"
#include "cli/common.h"
#include "comm/comm_report.h"
#include "core/check.h"
#include "core/memory.h"
#include "core/threading.h"
#include "kernels/onednn_matmul.h"

namespace tsp::cli {

namespace {

double mib(const nlohmann::json& bytes) {
  return bytes.get<double>() / (1024.0 * 1024.0);
}

CommStats comm_from_json(const nlohmann::json& j) {
  CommStats s;
  for (const auto& [phase, labels] : j.items())
    for (const auto& [label, c] : labels.items())
      s[phase][label] = {c["op"].get<std::string>(), c["calls"].get<int64_t>(),
                         c["payload_bytes"].get<int64_t>(), c["recv_bytes"].get<int64_t>(),
                         c["seconds"].get<double>()};
  return s;
}

void print_decode_report(const nlohmann::json& d) {
  const auto& t = d["tpot_s"];
  std::printf(
      "tsp bench --decode | %s on %d rank%s%s | %s | batch %lld x prompt %lld + %lld new tokens\n",
      d["label"].get<std::string>().c_str(), d["ranks"].get<int>(), d["ranks"].get<int>() == 1 ? "" : "s",
      d["kv_layout"].get<std::string>().empty() ? "" : (" | kv " + d["kv_layout"].get<std::string>()).c_str(),
      d["dtype"].get<std::string>().c_str(), (long long)d["batch"].get<int64_t>(),
      (long long)d["prompt_len"].get<int64_t>(), (long long)d["new_tokens"].get<int64_t>());
  std::printf("TTFT %.4f s | TPOT mean %.3f ms, p50 %.3f ms, p99 %.3f ms | %.1f output tokens/s\n",
              d["ttft_s"].get<double>(), 1e3 * t["mean"].get<double>(), 1e3 * t["p50"].get<double>(),
              1e3 * t["p99"].get<double>(), d["output_tokens_per_s"].get<double>());
  std::printf("%4s %9s %12s %9s %16s\n", "rank", "peak MiB", "kv_cache MiB", "VmHWM MiB", "decode KiB/step");
  for (const auto& e : d["per_rank"])
    std::printf("%4d %9.2f %12.2f %9.2f %16.2f\n", e["rank"].get<int>(), mib(e["memory_peak_bytes"]["total"]),
                mib(e["memory_peak_bytes"]["kv_cache"]), mib(e["memory_peak_bytes"]["vmhwm"]),
                e["decode_comm_recv_bytes_per_step"].get<double>() / 1024.0);
  const CommStats comm = comm_from_json(d["per_rank"][0]["comm"]);
  if (!comm.empty())
    std::printf("communication of rank 0 (decode: per step):\n%s", comm_stats_table(comm).c_str());
}

void print_report(const nlohmann::json& d) {
  if (d["mode"] == "decode") return print_decode_report(d);
  std::printf(
      "tsp bench | %s on %d rank%s | %s | %s | batch %lld x seq %lld | %lld timed steps after %lld warm-up\n",
      d["label"].get<std::string>().c_str(), d["ranks"].get<int>(), d["ranks"].get<int>() == 1 ? "" : "s",
      d["mode"].get<std::string>().c_str(), d["dtype"].get<std::string>().c_str(),
      (long long)d["batch"].get<int64_t>(), (long long)d["seq_len"].get<int64_t>(),
      (long long)d["steps"].get<int64_t>(), (long long)d["warmup"].get<int64_t>());
  std::printf("threads: %s | %s | matmul precision %s%s\n", thread_summary(thread_plan()).c_str(),
              kernels::onednn::summary().c_str(), d["matmul_precision"].get<std::string>().c_str(),
              d.value("overlap", true) ? "" : " | no overlap (every transfer waited when posted)");
  std::printf(
      "step %.3f s | %.0f tokens/s | model %.2f GFLOP/s = %.1f %% of cblas_sgemm %.1f GFLOP/s (all ranks)\n",
      d["step_seconds"].get<double>(), d["tokens_per_s"].get<double>(),
      d["model_flops_per_s"].get<double>() / 1e9, 100.0 * d["model_flops_ratio"].get<double>(),
      d["sgemm_flops_per_s"].get<double>() / 1e9);
  if (d["gemm_bf16_flops_per_s"].get<double>() > 0)
    std::printf(
        "GEMM ceilings (all ranks): cblas_sgemm %.1f GFLOP/s, oneDNN bf16 %.1f GFLOP/s (%.2fx) on %s\n",
        d["sgemm_flops_per_s"].get<double>() / 1e9, d["gemm_bf16_flops_per_s"].get<double>() / 1e9,
        d["gemm_bf16_flops_per_s"].get<double>() / d["sgemm_flops_per_s"].get<double>(),
        d["isa"].get<std::string>().c_str());
  if (d["matmul_precision"] == "bf16" && d["gemm_bf16_flops_per_s"].get<double>() > 0)
    std::printf("model %.1f %% of the oneDNN bf16 GEMM rate\n",
                100.0 * d["model_flops_ratio_bf16_gemm"].get<double>());
  else if (d["gemm_bf16_flops_per_s"].get<double>() <= 0)
    std::printf("GEMM ceilings (all ranks): cblas_sgemm %.1f GFLOP/s; oneDNN has no bf16 product on %s\n",
                d["sgemm_flops_per_s"].get<double>() / 1e9, d["isa"].get<std::string>().c_str());
  std::printf("%4s %9s %9s %9s %9s %9s %9s %13s\n", "rank", "peak MiB", "VmHWM MiB", "step s", "compute s",
              "comm s", "idle s", "recv MiB/step");
  for (const auto& e : d["per_rank"]) {
    const auto& s = e["seconds"];
    std::printf("%4d %9.2f %9.2f %9.4f %9.4f %9.4f %9.4f %13.3f\n", e["rank"].get<int>(),
                mib(e["memory_peak_bytes"]["total"]), mib(e["memory_peak_bytes"]["vmhwm"]),
                s["step"].get<double>(), s["compute"].get<double>(), s["comm_exposed"].get<double>(),
                s["idle"].get<double>(), mib(e["comm_recv_bytes_per_step"]));
  }
  std::printf("peak MiB per category (rank 0):");
  for (int k = 0; k < kMemCategories; ++k) {
    const std::string name(mem_name(Mem(k)));
    std::printf(" %s %.2f%s", name.c_str(), mib(d["per_rank"][0]["memory_peak_bytes"][name]),
                k + 1 < kMemCategories ? " |" : "\n");
  }
  const CommStats comm = comm_from_json(d["per_rank"][0]["comm"]);
  if (!comm.empty()) std::printf("communication of rank 0 per step:\n%s", comm_stats_table(comm).c_str());
}

}  // namespace

void add_bench_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand(
      "bench", "per-rank memory, communication and compute/comm/idle time of training steps or prefill");
  auto src = std::make_shared<ModelSource>();
  auto o = std::make_shared<BenchOptions>();
  auto compare = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  add_model_options(app, *src);
  add_layout_options(app, o->strategy, o->layout);
  app->add_option("--seq-len", o->seq_len, "tokens per sequence")->capture_default_str();
  app->add_option("--batch", o->batch, "sequences per step (the global batch)")->capture_default_str();
  app->add_option("--steps", o->steps, "timed steps")->capture_default_str();
  app->add_option("--warmup", o->warmup, "untimed steps before the timed ones")->capture_default_str();
  app->add_flag("--forward-only", o->forward_only,
                "prefill: forward passes only (no gradients, no optimizer)");
  auto no_overlap = std::make_shared<bool>(false);
  app->add_flag("--no-overlap", *no_overlap,
                "wait for every non-blocking transfer as soon as it is posted: the double buffers hide "
                "nothing, so comm_exposed shows what the overlap hides (same results and bytes)");
  app->add_flag(
      "--decode", o->decode,
      "serving: a prefill of --batch prompts of --prompt-len tokens, then --new-tokens decode steps "
      "with the KV cache (TTFT, time per output token, KV-cache memory; docs/inference.md)");
  app->add_option("--prompt-len", o->prompt_len, "--decode: tokens per prompt")->capture_default_str();
  app->add_option("--new-tokens", o->new_tokens, "--decode: tokens generated per sequence")
      ->capture_default_str();
  auto no_frozen = std::make_shared<bool>(false);
  app->add_flag(
      "--blocked-weights", o->blocked_weights,
      "--decode with bf16 products: also keep the weights at rest in oneDNN's blocked layout where it "
      "pays (matrices of at least 512 x 512; their bf16 bytes again, under parameters)");
  app->add_flag("--no-frozen-weights", *no_frozen,
                "--decode with --matmul-precision bf16: round the weights to bf16 in every product (the "
                "baseline), not once per generation");
  auto kv_layout = std::make_shared<std::string>("heads");
  auto* kv = app->add_option("--kv-layout", *kv_layout, "--decode, tsp: KV cache by heads or sequence")
                 ->capture_default_str();
  add_dtype_options(app, o->dtype, /*with_float64=*/true, /*training=*/true);
  app->add_option("--seed", o->seed, "seed of the model and the random tokens")->capture_default_str();
  app->add_option("--trace", o->trace,
                  "Chrome trace: FILE on one rank; on several, one per rank with .rank<r> before .json "
                  "(out.json -> out.rank0.json, ...)");
  app->add_option("--sgemm-n", o->sgemm_n, "size n of the n^3 cblas_sgemm measured as the GEMM ceiling")
      ->capture_default_str();
  app->add_option("--compare", *compare,
                  "comma-separated layouts measured in turn, ratios against the first: NAME[:TxS][+sp][+kv], "
                  "e.g. tp,tp+sp,tpsp:2x2,tsp (see docs/bench.md)");
  app->add_flag("--json", *json, "print one JSON document");
  auto profile_out = std::make_shared<std::string>();
  app->add_option("--write-device-profile", *profile_out,
                  "also measure link bandwidth and latency and write a device profile for tsp plan --device "
                  "FILE (needs >= 2 ranks; not with --compare)");
  cmds.push_back(
      {app,
       [app, src, o, compare, json, profile_out, kv_layout, kv, no_overlap, no_frozen](Communicator& world) {
         BenchOptions opts = *o;
         opts.overlap = !*no_overlap;
         opts.freeze_bf16_weights = !*no_frozen;
         opts.model = src->load();
         opts.kv.kv_layout = parse_kv_layout(*kv_layout);
         opts.kv.kv_layout_given = kv->count() > 0;
         TSP_REQUIRE(opts.decode || !*no_frozen, "--no-frozen-weights describes --decode");
         TSP_REQUIRE(opts.decode || !opts.blocked_weights, "--blocked-weights describes --decode");
         TSP_REQUIRE(opts.decode || (!app->get_option("--prompt-len")->count() &&
                                     !app->get_option("--new-tokens")->count() && !kv->count()),
                     "--prompt-len, --new-tokens and --kv-layout describe --decode");
         TSP_REQUIRE(!opts.decode || (!opts.forward_only && !app->get_option("--seq-len")->count() &&
                                      !app->get_option("--steps")->count()),
                     "--decode measures one generation of --prompt-len + --new-tokens: drop "
                     "--forward-only, --seq-len and --steps");
         TSP_REQUIRE(!opts.decode || profile_out->empty(),
                     "--write-device-profile measures a training step: drop --decode");
         nlohmann::json doc;
         if (app->get_option("--compare")->count()) {
           // The entries carry the mesh; a global one would be ambiguous.
           const StrategyOptions& l = opts.layout;
           TSP_REQUIRE(!app->get_option("--strategy")->count() && l.tp == 0 && l.sp == 0 &&
                           !l.sequence_parallel && !l.keep_gathered_kv,
                       "--compare takes the layout from its entries: drop --strategy, --tp, --sp, "
                       "--sequence-parallel and --keep-gathered-kv and write e.g. --compare "
                       "tsp+kv,tpsp:2x2+sp (only --dp and --zero1 apply to every entry)");
           TSP_REQUIRE(profile_out->empty(),
                       "--write-device-profile measures one layout's step: drop --compare");
           doc = run_compare(opts, parse_compare_list(*compare, opts.layout), world);
         } else {
           if (!profile_out->empty())  // refuse before the benchmark runs, on every rank
             TSP_REQUIRE(world.size() >= 2,
                         "--write-device-profile measures the link between ranks and needs at "
                         "least 2 ranks (got {})",
                         world.size());
           doc = run_bench(opts, world);
           if (!profile_out->empty()) {
             const nlohmann::json profile = measure_device_profile(doc, world);
             write_device_profile(profile, *profile_out, world);
             doc["device_profile"] = profile;
             doc["device_profile_file"] = *profile_out;
           }
         }
         doc["threads"] = thread_json(thread_plan());
         if (world.rank() == 0) {
           if (*json) {
             std::printf("%s\n", doc.dump(2).c_str());
           } else if (doc.contains("layouts")) {
             for (const auto& d : doc["layouts"]) {
               print_report(d);
               std::printf("\n");
             }
             std::printf("ratios against %s:\n%s", doc["baseline"].get<std::string>().c_str(),
                         compare_table(doc).c_str());
           } else {
             print_report(doc);
             if (doc.contains("device_profile_file"))
               std::printf("device profile for tsp plan --device: %s\n",
                           doc["device_profile_file"].get<std::string>().c_str());
           }
         }
         return 0;
       }});
}

}  // namespace tsp::cli

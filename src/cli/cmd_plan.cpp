// tsp plan: memory, communication, FLOPs and projected step time per rank for every layout (src/plan/,
// docs/planning.md). Runs on one process; nothing is allocated for the model.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

#include "cli/common.h"
#include "core/check.h"
#include "plan/inference.h"
#include "plan/report.h"
#include "train/stop_signals.h"

namespace tsp::cli {

namespace {

struct PlanOptions {
  plan::Request req;
  int64_t batch = 1;
  bool inference = false;  // --inference: serving (weights, KV cache, decode) instead of training steps
  int64_t context = 0, new_tokens = 1;
  std::string budget, plot_dir;
  bool json = false;
};

// The chart script: $TSP_PLOT_SCRIPT, else where CMake put it relative to the binary: PREFIX/share/tsp for an
// installed tsp (PREFIX/bin/tsp), BUILD/share/tsp in a build tree (BUILD/tsp). Resolved before anything is
// written.
std::string find_plot_script() {
  if (const char* env = std::getenv("TSP_PLOT_SCRIPT")) {
    TSP_REQUIRE(std::filesystem::is_regular_file(env), "--plot: TSP_PLOT_SCRIPT={} is not a file", env);
    return env;
  }
  std::error_code ec;
  const std::filesystem::path exe_dir = std::filesystem::read_symlink("/proc/self/exe", ec).parent_path();
  std::vector<std::string> tried;
  for (const std::filesystem::path& dir :
       {exe_dir.parent_path() / "share" / "tsp", exe_dir / "share" / "tsp"}) {
    const std::filesystem::path s = dir / "plot_plan.py";
    if (!ec && std::filesystem::is_regular_file(s)) return s.string();
    tried.push_back(s.string());
  }
  throw UsageError(
      fmt::format("--plot needs plot_plan.py, which is installed with tsp (cmake --install BUILD --prefix "
                  "PREFIX puts it in "
                  "PREFIX/share/tsp); not found at {}; set TSP_PLOT_SCRIPT to its path",
                  fmt::join(tried, " or ")));
}

void write_plots(const plan::Request& req, const std::string& dir) {
  const std::string script = find_plot_script();
  std::filesystem::create_directories(dir);
  const std::string data = dir + "/plan_sweep.json";
  {
    std::ofstream out(data);
    TSP_REQUIRE(out.good(), "--plot: cannot write {}", data);
    out << plan::sweep_json(req).dump(1) << "\n";
  }
  // Debian's interpreter first: python3-matplotlib (scripts/deps) is installed for it, not for a python3
  // that a version manager may have put first on PATH.
  const std::string python = std::filesystem::exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  const std::string cmd = fmt::format("{} '{}' '{}' '{}'", python, script, data, dir);
  const int rc = [&] {
    StopSignalsUnblocked unblocked;
    return std::system(cmd.c_str());
  }();
  TSP_REQUIRE(rc == 0,
              "--plot: '{}' failed (exit status {}); is python3-matplotlib installed (scripts/deps)?", cmd,
              WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
}

int run_plan_inference(const PlanOptions& o, const ModelSource& src, Communicator& world) {
  plan::Request req = o.req;
  req.model = src.load();
  req.model_name = src.config_opt && src.config_opt->count() ? src.config_path : src.preset;
  if (!o.budget.empty()) req.budget = plan::parse_bytes(o.budget);
  plan::device_profile(req.device);
  TSP_REQUIRE(o.new_tokens >= 1 && o.new_tokens < o.context,
              "--new-tokens {} must be in [1, --context {}): the prompt is the rest of the context",
              o.new_tokens, o.context);
  const plan::ServeRequestShape s{o.batch, o.context - o.new_tokens, o.context};
  const plan::InferenceResult res = plan::run_inference(req, s);
  if (world.rank() != 0) return 0;
  if (o.json)
    std::printf("%s\n", plan::inference_json(req, s, res).dump(2).c_str());
  else
    std::printf("%s", plan::inference_table(req, s, res).c_str());
  return 0;
}

}  // namespace

void add_plan_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand(
      "plan", "predict memory, communication, FLOPs and tokens/s per rank for every parallel layout");
  auto src = std::make_shared<ModelSource>();
  auto o = std::make_shared<PlanOptions>();
  add_model_options(app, *src);
  plan::Request& r = o->req;
  auto* seq = app->add_option("--seq-len", r.shape.seq_len, "tokens per sequence (training)");
  app->add_flag(
      "--inference", o->inference,
      "plan serving: weights, KV cache and buffers per rank, decode communication and time per output "
      "token (docs/inference.md)");
  auto* ctx =
      app->add_option("--context", o->context, "--inference: positions per sequence (prompt + new tokens)");
  app->add_option("--new-tokens", o->new_tokens,
                  "--inference: generated tokens per sequence (the prompt is the rest)")
      ->capture_default_str();
  app->add_option("--batch", o->batch, "micro-batch: sequences per replica per step")->capture_default_str();
  app->add_option("--ranks", r.ranks, "D: ranks per model replica")->capture_default_str();
  app->add_option("--tp", r.only_tp, "restrict tpsp to tensor degree T");
  app->add_option("--sp", r.only_sp, "restrict tpsp to sequence degree Σ");
  app->add_option("--dp", r.dp, "data-parallel replicas")->capture_default_str();
  app->add_flag("--zero1", r.zero1, "with --dp > 1: shard the AdamW state over the replicas");
  app->add_flag("--keep-gathered-kv", r.keep_gathered_kv, "tsp: keep the gathered K/V for the backward");
  app->add_option("--dtype", r.dtype,
                  "float32, bf16 (the runtime's bf16 policy: bf16 weights, activations and traffic, fp32 "
                  "master, gradients and compute; docs/precision.md) or float64")
      ->capture_default_str();
  app->add_option("--grad-reduce-dtype", r.grad_reduce_dtype,
                  "gradient sums on the wire: float32 or bf16 (the runtime's --grad-reduce-dtype)")
      ->capture_default_str();
  app->add_option("--weight-comm-dtype", r.weight_comm_dtype,
                  "tsp: dtype of the weight shards on the wire and their buffers (default: --dtype; bf16 is "
                  "the runtime's --weight-comm-dtype bf16)");
  app->add_option("--optimizer-dtype", r.optimizer_dtype, "AdamW moments: float32, bf16, float64")
      ->capture_default_str();
  app->add_option("--master-weights", r.master,
                  "full-precision weight copy in the optimizer: auto (when --dtype is narrower than "
                  "--optimizer-dtype), on, off")
      ->capture_default_str();
  app->add_option("--recompute", r.recompute,
                  "runtime (what tsp train does per layout), none, selective (keep o, lse), full (keep layer "
                  "inputs)")
      ->capture_default_str();
  app->add_option("--memory-budget", o->budget,
                  "bytes per device, e.g. 80GB, 192GiB (default: the device's)");
  app->add_option("--device", r.device,
                  "profile: " + fmt::format("{}", fmt::join(plan::device_profile_names(), ", ")) +
                      ", or a JSON profile file (docs/planning.md)")
      ->capture_default_str();
  app->add_flag("--json", o->json, "print one JSON document");
  app->add_option("--plot", o->plot_dir, "write PNG and SVG charts (and the sweep's JSON) into DIR");
  cmds.push_back(
      {app, [src, o, seq, ctx](Communicator& world) {
         if (o->inference) {
           TSP_REQUIRE(ctx->count() && !seq->count(),
                       "--inference plans by --context (prompt + new tokens), not --seq-len");
           TSP_REQUIRE(o->plot_dir.empty(), "--plot draws the training sweeps; --inference has none");
           return run_plan_inference(*o, *src, world);
         }
         TSP_REQUIRE(seq->count(), "--seq-len is required (or --inference with --context)");
         TSP_REQUIRE(!ctx->count(), "--context belongs to --inference");
         plan::Request req = o->req;
         req.model = src->load();
         req.model_name = src->config_opt && src->config_opt->count() ? src->config_path : src->preset;
         req.shape.micro_batch = o->batch;
         if (!o->budget.empty()) req.budget = plan::parse_bytes(o->budget);
         plan::device_profile(req.device);  // a bad name fails before any output
         const plan::Result res = plan::run(req);
         if (world.rank() != 0) return 0;
         // The answer first: the charts come after it, and a chart failure cannot hide it.
         if (o->json)
           std::printf("%s\n", plan::to_json(req, res).dump(2).c_str());
         else
           std::printf("%s", plan::to_table(req, res).c_str());
         std::fflush(stdout);
         if (!o->plot_dir.empty()) write_plots(req, o->plot_dir);
         return 0;
       }});
}

}  // namespace tsp::cli

// tsp check: a parallel layout against the single-device model on the same random model and batch.
#include <cstdio>

#include "cli/common.h"
#include "comm/comm_report.h"
#include "core/threading.h"
#include "kernels/onednn_matmul.h"
#include "parallel/equivalence.h"

namespace tsp::cli {

void add_check_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app =
      root.add_subcommand("check", "compare a layout's forward+backward with the single-device model");
  auto src = std::make_shared<ModelSource>();
  auto o = std::make_shared<CheckOptions>();
  auto json = std::make_shared<bool>(false);
  add_model_options(app, *src);
  src->preset = "tiny";
  add_layout_options(app, o->strategy, o->layout);
  app->add_option("--seq-len", o->seq_len, "tokens per sequence")->required();
  app->add_option("--batch", o->batch, "sequences")->capture_default_str();
  add_dtype_options(app, o->dtype, /*with_float64=*/true, /*training=*/true);
  app->add_option("--seed", o->seed, "seed of the model and the batch")->capture_default_str();
  app->add_flag("--json", *json, "print one JSON document");
  cmds.push_back(
      {app, [src, o, json](Communicator& world) {
         CheckOptions opts = *o;
         opts.model = src->load();
         nlohmann::json r = run_check(opts, world);
         r["threads"] = thread_json(thread_plan());
         r["isa"] = kernels::onednn::cpu_isa();
         if (world.rank() == 0) {
           if (*json) {
             std::printf("%s\n", r.dump(2).c_str());
           } else {
             const auto& e = r["max_rel_err"];
             std::printf("tsp check | strategy %s on %d ranks | %s | batch %lld x seq %lld\n",
                         opts.strategy.c_str(), world.size(),
                         (opts.dtype + (r.contains("vs_fp64") ? " with bf16 products" : "")).c_str(),
                         (long long)opts.batch, (long long)opts.seq_len);
             std::printf("max relative error: loss %.3e  logits %.3e  grads %.3e (worst: %s)\n",
                         e["loss"].get<double>(), e["logits"].get<double>(), e["grads"].get<double>(),
                         r["worst_grad_tensor"].get<std::string>().c_str());
             if (r.contains("vs_fp64")) {
               const auto& v = r["vs_fp64"];
               for (const char* who : {"layout", "single"})
                 std::printf("vs fp64 single-device, %-6s: loss %.3e  logits %.3e  grads %.3e\n", who,
                             v[who]["loss"].get<double>(), v[who]["logits"].get<double>(),
                             v[who]["grads"].get<double>());
               std::printf("bf16 products: %s: %s\n", v["rule"].get<std::string>().c_str(),
                           r["pass"].get<bool>() ? "PASS" : "FAIL");
             } else {
               std::printf("tolerance %.0e: %s\n", r["tolerance"].get<double>(),
                           r["pass"].get<bool>() ? "PASS" : "FAIL");
             }
           }
         }
         return r["pass"].get<bool>() ? 0 : 1;
       }});
}

}  // namespace tsp::cli

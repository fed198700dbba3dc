#include "cli/common.h"

#include <sstream>

#include "core/check.h"

namespace tsp::cli {

ModelConfig ModelSource::load() const {
  ModelConfig c = (config_opt && config_opt->count()) ? load_config(config_path) : preset_config(preset);
  c.validate();
  return c;
}

void add_model_options(CLI::App* app, ModelSource& src) {
  src.preset_opt = app->add_option("--preset", src.preset,
                                   "built-in model: " + fmt::format("{}", fmt::join(preset_names(), ", ")))
                       ->capture_default_str();
  src.config_opt =
      app->add_option("--config", src.config_path, "model config.json (Hugging Face LlamaConfig)");
  src.preset_opt->excludes(src.config_opt);
}

void add_layout_options(CLI::App* app, std::string& strategy, StrategyOptions& o) {
  app->add_option(
         "--strategy", strategy,
         "parallel layout of one model replica: " + fmt::format("{}", fmt::join(strategy_names(), ", ")))
      ->capture_default_str();
  app->add_option("--tp", o.tp, "tpsp: tensor-parallel degree T (T x SP = ranks per replica)");
  app->add_option("--sp", o.sp, "tpsp: sequence-parallel degree (T x SP = ranks per replica)");
  app->add_flag("--sequence-parallel", o.sequence_parallel,
                "tp, tpsp: Megatron sequence parallelism (norm regions sharded along the sequence)");
  app->add_option("--dp", o.dp, "data-parallel replicas of the layout (ranks = dp x ranks per replica)")
      ->capture_default_str();
  app->add_flag("--zero1", o.zero1, "with --dp > 1: shard the AdamW state across replicas (ZeRO-1)");
  app->add_flag("--keep-gathered-kv", o.keep_gathered_kv,
                "tsp: keep the all-gathered K/V for the backward instead of re-gathering (costs memory)");
}

}  // namespace tsp::cli

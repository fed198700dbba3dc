// tsp generate: continue a prompt (text as bytes, or token ids) from a checkpoint.
#include <cstdio>

#include "cli/common.h"
#include "core/check.h"
#include "infer/session.h"
#include "train/data.h"

namespace tsp::cli {

namespace {

struct GenerateOptions {
  std::string checkpoint, prompt, prompt_tokens, strategy = "single";
  StrategyOptions layout;
  int64_t max_new_tokens = 64;
  double temperature = 0.0;
  uint64_t seed = 0;
  bool json = false;
};

int run_generate(const GenerateOptions& o, Communicator& world) {
  std::vector<int32_t> prompt =
      o.prompt_tokens.empty() ? byte_tokenize(o.prompt) : parse_token_ids(o.prompt_tokens, "--prompt-tokens");
  TSP_REQUIRE(!prompt.empty(), "the prompt is empty: give --prompt TEXT or --prompt-tokens \"1 2 3\"");
  InferenceSession session(o.checkpoint, o.strategy, world, o.layout);
  std::vector<int32_t> out = session.generate(prompt, o.max_new_tokens, o.temperature, o.seed);
  std::vector<int32_t> fresh(out.begin() + int64_t(prompt.size()), out.end());
  if (world.rank() == 0) {
    if (o.json) {
      nlohmann::json j = {{"prompt_tokens", prompt},
                          {"tokens", fresh},
                          {"text", byte_detokenize(fresh)},
                          {"temperature", o.temperature}};
      std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else if (!o.prompt_tokens.empty()) {
      for (size_t i = 0; i < fresh.size(); ++i) std::printf("%s%d", i ? " " : "", fresh[i]);
      std::printf("\n");
    } else {
      std::printf("%s%s\n", o.prompt.c_str(), byte_detokenize(fresh).c_str());
    }
  }
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand("generate", "continue a prompt with a trained checkpoint");
  auto o = std::make_shared<GenerateOptions>();
  app->add_option("--checkpoint", o->checkpoint, "checkpoint directory")->required();
  auto* p = app->add_option("--prompt", o->prompt, "prompt text (byte-level tokens)");
  auto* pt = app->add_option("--prompt-tokens", o->prompt_tokens, "prompt as token ids, e.g. \"1 2 3\"");
  p->excludes(pt);
  app->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate")->capture_default_str();
  app->add_option("--temperature", o->temperature, "0 = greedy")->capture_default_str();
  app->add_option("--seed", o->seed, "sampling seed")->capture_default_str();
  add_layout_options(app, o->strategy, o->layout);
  app->add_flag("--json", o->json, "print one JSON document");
  cmds.push_back({app, [o, p, pt](Communicator& world) {
                    TSP_REQUIRE(p->count() || pt->count(), "give --prompt TEXT or --prompt-tokens \"1 2 3\"");
                    return run_generate(*o, world);
                  }});
}

}  // namespace tsp::cli

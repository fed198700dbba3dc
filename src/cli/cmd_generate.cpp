// tsp generate: continue prompts (text through the checkpoint's tokenizer, else bytes; or token ids) from a
// checkpoint, as one batch, with the KV cache (docs/inference.md).
#include <cstdio>
#include <fstream>

#include "cli/common.h"
#include "core/check.h"
#include "core/precision.h"
#include "infer/session.h"
#include "kernels/matmul_precision.h"
#include "model/checkpoint.h"
#include "tokenizer/tokenizer.h"

namespace tsp::cli {

namespace {

struct GenerateCliOptions {
  std::string checkpoint, prompt, prompt_tokens, prompts_file, strategy = "single", kv_layout = "heads";
  StrategyOptions layout;
  GenerateOptions gen;
  std::vector<int32_t> stop_tokens;
  bool token_ids = false, no_kv_cache = false, json = false, kv_layout_given = false, blocked_weights = false;
};

// One prompt per non-empty line: text (through `tok`), or whitespace-separated ids with --token-ids.
std::vector<std::vector<int32_t>> read_prompts(const std::string& path, bool ids, const Tokenizer& tok) {
  std::ifstream f(path);
  TSP_REQUIRE(static_cast<bool>(f), "cannot open --prompts file {}", path);
  std::vector<std::vector<int32_t>> out;
  std::string line;
  for (int lineno = 1; std::getline(f, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    out.push_back(ids ? parse_token_ids(line, fmt::format("{} line {}", path, lineno)) : tok.encode(line));
  }
  TSP_REQUIRE(!out.empty(), "--prompts file {} holds no prompt (one per line)", path);
  return out;
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / double(v.size());
}

int run_generate(GenerateCliOptions& o, Communicator& world) {
  o.gen.sampling.validate();  // before anything is read
  DecodeOptions d;
  d.kv_layout = parse_kv_layout(o.kv_layout);
  d.kv_layout_given = o.kv_layout_given;
  TSP_REQUIRE(!(o.no_kv_cache && o.kv_layout_given),
              "--kv-layout places the KV cache; --no-kv-cache has none");
  require_inference_layout(o.strategy, o.layout, world.size());
  const auto tok = load_tokenizer_for(resolve_checkpoint_dir(o.checkpoint));
  if (world.rank() == 0 && o.prompt_tokens.empty() && !o.token_ids)
    std::fprintf(stderr, "tokenizer: %s\n", tok->describe().c_str());
  std::vector<std::vector<int32_t>> prompts;
  if (!o.prompts_file.empty())
    prompts = read_prompts(o.prompts_file, o.token_ids, *tok);
  else
    prompts.push_back(o.prompt_tokens.empty() ? tok->encode(o.prompt)
                                              : parse_token_ids(o.prompt_tokens, "--prompt-tokens"));
  TSP_REQUIRE(!prompts[0].empty(), "the prompt is empty: give --prompt TEXT or --prompt-tokens \"1 2 3\"");
  InferenceSession session(o.checkpoint, o.strategy, world, o.layout, d);
  o.gen.stop_tokens = session.eos_tokens();
  session.set_blocked_weights(o.blocked_weights);
  o.gen.stop_tokens.insert(o.gen.stop_tokens.end(), o.stop_tokens.begin(), o.stop_tokens.end());
  const std::vector<GeneratedSequence> out = session.generate(prompts, o.gen, !o.no_kv_cache);
  const GenerateStats& st = session.stats();
  // Every rank's cache, for the report.
  std::vector<int64_t> kv_bytes(size_t(world.size()));
  world.all_gather("report.kv_cache_bytes", &st.kv_cache_bytes, kv_bytes.data(), 1);
  if (world.rank() != 0) return 0;

  const bool text = o.prompt_tokens.empty() && !o.token_ids;
  int64_t decode_tokens = 0;
  for (const GeneratedSequence& g : out) {
    decode_tokens += int64_t(g.tokens.size()) - 1;
    if (g.finish_reason == "length_limit")
      std::fprintf(stderr,
                   "warning: a sequence of %zu prompt tokens stopped after %zu new tokens at the model's "
                   "%lld-token limit (max_position_embeddings %lld; finish_reason length_limit)\n",
                   g.prompt.size(), g.tokens.size(), (long long)session.config().max_sequence_length(),
                   (long long)session.config().max_position_embeddings);
  }
  const double tpot = st.decode_steps ? st.decode_seconds / double(st.decode_steps) : 0.0;
  const double tokens_per_s = st.decode_seconds > 0 ? double(decode_tokens) / st.decode_seconds : 0.0;
  if (o.json) {
    nlohmann::json seqs = nlohmann::json::array();
    for (const GeneratedSequence& g : out)
      seqs.push_back({{"prompt_tokens", g.prompt},
                      {"tokens", g.tokens},
                      {"text", tok->decode(g.tokens, /*skip_special_tokens=*/true)},
                      {"finish_reason", g.finish_reason}});
    nlohmann::json j = {{"sequences", seqs},
                        {"prefill_seconds", st.prefill_seconds},
                        {"decode_seconds", st.decode_seconds},
                        {"decode_steps", st.decode_steps},
                        {"time_per_output_token_s", tpot},
                        {"output_tokens_per_s", tokens_per_s},
                        {"kv_cache", !o.no_kv_cache},
                        {"kv_cache_bytes_per_rank", kv_bytes},
                        {"blocked_bf16_bytes", st.blocked_bf16_bytes},
                        {"kv_context", st.context},
                        {"strategy", o.strategy},
                        {"ranks", world.size()},
                        {"dtype", precision_policy().bf16 ? "bf16" : "float32"},
                        {"matmul_precision", kernels::to_string(kernels::matmul_precision())},
                        {"stop_tokens", o.gen.stop_tokens},
                        {"temperature", o.gen.sampling.temperature},
                        {"top_k", o.gen.sampling.top_k},
                        {"top_p", o.gen.sampling.top_p},
                        {"seed", o.gen.sampling.seed}};
    if (!o.no_kv_cache)
      j["kv_layout"] = kv_layout_name(session.strategy().name() == "tsp" ? d.kv_layout : KvLayout::heads);
    std::printf("%s\n", j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  for (const GeneratedSequence& g : out) {
    if (text) {
      std::printf("%s%s\n", tok->decode(g.prompt, /*skip_special_tokens=*/true).c_str(),
                  tok->decode(g.tokens, /*skip_special_tokens=*/true).c_str());
    } else {
      for (size_t i = 0; i < g.tokens.size(); ++i) std::printf("%s%d", i ? " " : "", g.tokens[i]);
      std::printf("\n");
    }
  }
  std::fprintf(stderr,
               "generate | %s on %d ranks | %zu sequences | prefill %.3f s | %lld decode steps, %.2f ms per "
               "output token, %.1f tokens/s | KV cache %.2f MiB per rank%s\n",
               o.strategy.c_str(), world.size(), out.size(), st.prefill_seconds, (long long)st.decode_steps,
               1e3 * mean(st.step_seconds), tokens_per_s, double(st.kv_cache_bytes) / (1024.0 * 1024.0),
               o.no_kv_cache ? " (--no-kv-cache)" : "");
  return 0;
}

}  // namespace

void add_generate_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app =
      root.add_subcommand("generate", "continue prompts with a trained checkpoint (KV cache, batched)");
  auto o = std::make_shared<GenerateCliOptions>();
  app->add_option("--checkpoint", o->checkpoint, "checkpoint directory")->required();
  auto* p = app->add_option("--prompt", o->prompt, "prompt text (byte-level tokens)");
  auto* pt = app->add_option("--prompt-tokens", o->prompt_tokens, "prompt as token ids, e.g. \"1 2 3\"");
  auto* pf =
      app->add_option("--prompts", o->prompts_file,
                      "file with one prompt per line, run as one batch (text, or ids with --token-ids)");
  p->excludes(pt);
  p->excludes(pf);
  pt->excludes(pf);
  app->add_flag("--token-ids", o->token_ids, "--prompts lines are whitespace-separated token ids");
  app->add_option("--max-new-tokens", o->gen.max_new_tokens, "new tokens per sequence at most")
      ->capture_default_str();
  app->add_option("--temperature", o->gen.sampling.temperature, "0 = greedy")->capture_default_str();
  app->add_option("--top-k", o->gen.sampling.top_k, "sample among the k most likely tokens (0 = off)")
      ->capture_default_str();
  app->add_option("--top-p", o->gen.sampling.top_p, "sample within the nucleus of mass p (1 = off)")
      ->capture_default_str();
  app->add_option("--seed", o->gen.sampling.seed, "sampling seed")->capture_default_str();
  app->add_option("--stop-token", o->stop_tokens,
                  "token id that ends a sequence (repeatable; added to the checkpoint's eos_token_id)");
  auto* kv = app->add_option("--kv-layout", o->kv_layout,
                             "tsp: KV cache by heads (each rank its head group, every position) or sequence "
                             "(each rank every head, its positions)")
                 ->capture_default_str();
  app->add_flag("--blocked-weights", o->blocked_weights,
                "with bf16 products: keep the weights of at least 512 x 512 in oneDNN's blocked layout too, "
                "1.2-2.2x faster decode products for their bf16 bytes again (docs/performance.md)");
  app->add_flag("--no-kv-cache", o->no_kv_cache,
                "re-run the whole sequence for every new token (the baseline; same tokens)");
  add_layout_options(app, o->strategy, o->layout);
  app->add_flag("--json", o->json, "print one JSON document");
  // Checkpoints are read into a float32 model; bf16 computes with bf16 weights and activations (the bf16
  // policy, core/precision.h; main() applies it).
  auto dtype = std::make_shared<std::string>("float32");
  add_dtype_options(app, *dtype, /*with_float64=*/false, /*training=*/false);
  cmds.push_back({app, [o, p, pt, pf, kv, dtype](Communicator& world) {
                    TSP_REQUIRE(p->count() || pt->count() || pf->count(),
                                "give --prompt TEXT, --prompt-tokens \"1 2 3\" or --prompts FILE");
                    TSP_REQUIRE(!o->token_ids || pf->count(),
                                "--token-ids describes the lines of --prompts FILE");
                    o->kv_layout_given = kv->count() > 0;
                    return run_generate(*o, world);
                  }});
}

}  // namespace tsp::cli

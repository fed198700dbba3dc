// tsp eval: mean next-token loss of a checkpoint on token sequences (or lines of text, through the
// checkpoint's tokenizer), optionally dumping the raw logits.
#include <cmath>
#include <cstdio>
#include <filesystem>
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

struct EvalOptions {
  std::string checkpoint, tokens_file, text_file, logits_out, strategy = "single";
  StrategyOptions layout;
  bool json = false;
};

std::vector<std::vector<int32_t>> read_token_file(const std::string& path) {
  require_input_file("--tokens", path, "a text file with one sequence of token ids per line");
  std::ifstream f(path);
  TSP_REQUIRE(static_cast<bool>(f), "cannot open --tokens file {}", path);
  std::vector<std::vector<int32_t>> seqs;
  std::string line;
  for (int lineno = 1; std::getline(f, line); ++lineno) {
    auto ids = parse_token_ids(line, fmt::format("{} line {}", path, lineno));
    if (!ids.empty()) seqs.push_back(std::move(ids));
  }
  TSP_REQUIRE(!seqs.empty(), "--tokens file {} holds no sequence (one per line, whitespace-separated ids)",
              path);
  // The loss predicts each token from the ones before it: a 1-token sequence has nothing to predict.
  int64_t predicted = 0;
  for (const auto& s : seqs) predicted += int64_t(s.size()) - 1;
  TSP_REQUIRE(
      predicted > 0,
      "--tokens file {}: nothing to evaluate: every sequence has a single token, and the loss needs at "
      "least 2 tokens per sequence (each token after the first is predicted from those before it)",
      path);
  return seqs;
}

// One sequence per non-empty line of a text file, tokenized with `tok` (its special tokens added).
std::vector<std::vector<int32_t>> read_text_file(const std::string& path, const Tokenizer& tok) {
  std::ifstream f(path);
  TSP_REQUIRE(static_cast<bool>(f), "cannot open --text file {}", path);
  std::vector<std::vector<int32_t>> seqs;
  std::string line;
  while (std::getline(f, line))
    if (!line.empty()) seqs.push_back(tok.encode(line));
  TSP_REQUIRE(!seqs.empty(), "--text file {} holds no line of text", path);
  return seqs;
}

int run_eval(const EvalOptions& o, Communicator& world) {
  require_inference_layout(o.strategy, o.layout, world.size());
  TSP_REQUIRE(o.tokens_file.empty() != o.text_file.empty(),
              "give exactly one of --tokens FILE or --text FILE");
  std::unique_ptr<Tokenizer> tok;
  if (!o.text_file.empty()) {
    tok = load_tokenizer_for(resolve_checkpoint_dir(o.checkpoint));
    if (world.rank() == 0 && !o.json) std::printf("tokenizer: %s\n", tok->describe().c_str());
  }
  auto seqs = tok ? read_text_file(o.text_file, *tok) : read_token_file(o.tokens_file);
  InferenceSession session(o.checkpoint, o.strategy, world, o.layout);
  const bool lead = world.rank() == 0;
  double loss_sum = 0;
  int64_t count = 0, total_tokens = 0;
  for (const auto& s : seqs) {
    auto [sum, n] = session.loss(s);
    loss_sum += sum;
    count += n;
    total_tokens += int64_t(s.size());
  }
  if (!o.logits_out.empty()) {
    // Raw little-endian float32 [total tokens x vocab], sequences in file order, tokens in original order.
    std::string tmp = o.logits_out + ".tmp";
    std::FILE* f = lead ? std::fopen(tmp.c_str(), "wb") : nullptr;
    TSP_REQUIRE(!lead || f, "cannot write --logits-out {}", tmp);
    for (const auto& s : seqs) {
      std::vector<float> lg = session.logits(s);
      if (lead && std::fwrite(lg.data(), sizeof(float), lg.size(), f) != lg.size()) {
        std::fclose(f);
        std::remove(tmp.c_str());
        throw Error(fmt::format("short write to {}", tmp));
      }
    }
    if (lead) {
      TSP_CHECK(std::fclose(f) == 0, "cannot close {}", tmp);
      std::filesystem::rename(tmp, o.logits_out);
    }
  }
  const double loss = count ? loss_sum / double(count) : 0.0;
  if (lead) {
    if (o.json) {
      nlohmann::json j = {{"loss", loss},
                          {"tokens", count},
                          {"sequences", seqs.size()},
                          {"perplexity", std::exp(loss)},
                          {"strategy", o.strategy},
                          {"ranks", world.size()},
                          {"dtype", precision_policy().bf16 ? "bf16" : "float32"},
                          {"matmul_precision", kernels::to_string(kernels::matmul_precision())}};
      if (tok) j["tokenizer"] = tok->describe();
      if (!o.logits_out.empty()) {
        j["logits_out"] = o.logits_out;
        j["logits_shape"] = {total_tokens, session.config().vocab_size};
      }
      std::printf("%s\n", j.dump(2).c_str());
    } else {
      std::printf("loss %.6f over %lld predicted tokens in %zu sequences (perplexity %.3f)\n", loss,
                  (long long)count, seqs.size(), std::exp(loss));
      if (!o.logits_out.empty())
        std::printf("logits: %s (float32, %lld x %lld)\n", o.logits_out.c_str(), (long long)total_tokens,
                    (long long)session.config().vocab_size);
    }
  }
  return 0;
}

}  // namespace

void add_eval_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand("eval", "mean next-token loss of a checkpoint on token sequences");
  auto o = std::make_shared<EvalOptions>();
  app->add_option("--checkpoint", o->checkpoint, "checkpoint directory (config.json + model.safetensors)")
      ->required();
  app->add_option("--tokens", o->tokens_file, "one sequence per line, whitespace-separated token ids");
  app->add_option("--text", o->text_file,
                  "one sequence per line of text, through the checkpoint's tokenizer (else bytes)");
  app->add_option("--logits-out", o->logits_out, "write raw little-endian float32 logits [tokens x vocab]");
  add_layout_options(app, o->strategy, o->layout);
  app->add_flag("--json", o->json, "print one JSON document (fields loss, tokens)");
  // Checkpoints are read into a float32 model; bf16 computes with bf16 weights and activations (the bf16
  // policy, core/precision.h; main() applies it).
  auto dtype = std::make_shared<std::string>("float32");
  add_dtype_options(app, *dtype, /*with_float64=*/false, /*training=*/false);
  cmds.push_back({app, [o, dtype](Communicator& world) { return run_eval(*o, world); }});
}

}  // namespace tsp::cli

// tsp tokenize: text -> token ids and back with a model directory's tokenizer, and text files -> a tokenized
// dataset for `tsp train --dataset`.
#include <cstdio>

#include "cli/common.h"
#include "core/check.h"
#include "data/tokenize_corpus.h"
#include "tokenizer/tokenizer.h"

namespace tsp::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, text, decode;
  TokenizeCorpusOptions corpus;
  bool no_special = false, skip_special = false, split_special = false, json = false, no_progress = false;
};

int run_tokenize(const TokenizeOptions& o, Communicator& world, bool text_given, bool decode_given) {
  TSP_REQUIRE(world.size() == 1, "tsp tokenize runs on one rank (it uses the rank's threads), not {}",
              world.size());
  const int modes = int(text_given) + int(decode_given) + int(!o.corpus.inputs.empty());
  TSP_REQUIRE(modes == 1,
              "tsp tokenize needs exactly one of --text TEXT, --decode \"IDS\" or --input FILES... "
              "--output DIR");
  auto tok = load_tokenizer(o.tokenizer);
  if (text_given) {
    const std::vector<int32_t> ids = tok->encode(o.text, !o.no_special, o.split_special);
    if (o.json) {
      std::printf("%s\n", nlohmann::json({{"ids", ids}}).dump().c_str());
    } else {
      for (size_t i = 0; i < ids.size(); ++i) std::printf("%s%d", i ? " " : "", ids[i]);
      std::printf("\n");
    }
    return 0;
  }
  if (decode_given) {
    const std::vector<int32_t> ids = parse_token_ids(o.decode, "--decode");
    for (size_t i = 0; i < ids.size(); ++i)
      TSP_REQUIRE(ids[i] >= 0 && ids[i] < tok->vocab_size(),
                  "--decode: id {} (at index {}) is outside the vocabulary [0, {}) of the {}", ids[i], i,
                  tok->vocab_size(), tok->describe());
    const std::string text = tok->decode(ids, o.skip_special);
    if (o.json)
      std::printf("%s\n", nlohmann::json({{"text", text}})
                              .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)
                              .c_str());
    else
      std::printf("%s\n", text.c_str());
    return 0;
  }
  TokenizeCorpusOptions c = o.corpus;
  c.add_special_tokens = !o.no_special;
  c.split_special_tokens = o.split_special;
  c.progress = !o.no_progress && !o.json;
  std::fprintf(stderr, "tsp tokenize | %s | %zu input file%s -> %s\n", tok->describe().c_str(),
               c.inputs.size(), c.inputs.size() == 1 ? "" : "s", c.output.c_str());
  nlohmann::json m = tokenize_corpus(*tok, c);
  const double sec = m["seconds"].get<double>();
  const double mbs = sec > 0 ? double(m["bytes_tokenized"].get<int64_t>()) / 1e6 / sec : 0.0;
  m["mb_per_s"] = mbs;
  if (o.json) {
    std::printf("%s\n", m.dump(2).c_str());
  } else {
    std::printf("%lld documents, %lld tokens (%s) from %.1f MB in %.2f s: %.2f MB/s on %d threads -> %s\n",
                (long long)m["documents"].get<int64_t>(), (long long)m["tokens"].get<int64_t>(),
                m["dtype"].get<std::string>().c_str(), double(m["bytes"].get<int64_t>()) / 1e6, sec, mbs,
                m["threads"].get<int>(), c.output.c_str());
  }
  return 0;
}

}  // namespace

void add_tokenize_command(CLI::App& root, std::vector<Command>& cmds) {
  auto* app = root.add_subcommand(
      "tokenize",
      "token ids of a text and back with a model's tokenizer, or text files -> a tokenized dataset");
  auto o = std::make_shared<TokenizeOptions>();
  app->add_option("--tokenizer", o->tokenizer,
                  "directory with tokenizer.json (+ tokenizer_config.json) or tokenizer.model")
      ->required();
  auto* text = app->add_option("--text", o->text, "text to encode");
  auto* decode = app->add_option("--decode", o->decode, "token ids to decode, e.g. \"1 2 3\"");
  app->add_option("--input", o->corpus.inputs,
                  "text files to tokenize into a dataset (.jsonl: one document per line)");
  app->add_option("--output", o->corpus.output, "dataset directory to write (must not exist)");
  app->add_option("--text-key", o->corpus.text_key, "field holding the text in .jsonl inputs")
      ->capture_default_str();
  app->add_option("--separator", o->corpus.separator,
                  "split non-.jsonl inputs into documents at this string (default: one document per file)");
  app->add_option("--eos-token", o->corpus.eos_token,
                  "token appended to every document (default: the tokenizer's eos_token)");
  app->add_flag("--no-special-tokens", o->no_special,
                "do not add the post-processor's special tokens (e.g. BOS)");
  app->add_flag("--split-special-tokens", o->split_special,
                "tokenize special-token text (e.g. \"<|endoftext|>\") as plain text");
  app->add_flag("--skip-special-tokens", o->skip_special, "--decode: leave special tokens out of the text");
  app->add_flag("--no-progress", o->no_progress, "no progress bar even on a terminal");
  app->add_flag("--json", o->json, "print one JSON document");
  cmds.push_back({app, [o, text, decode](Communicator& world) {
                    return run_tokenize(*o, world, text->count() > 0, decode->count() > 0);
                  }});
}

}  // namespace tsp::cli

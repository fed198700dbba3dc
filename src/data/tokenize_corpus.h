// `tsp tokenize --input FILES --output DIR`: text files -> a tokenized dataset (data/token_dataset.h).
// Documents: a .jsonl file holds one per line (its `text_key` field); any other file is one document, or
// several when `separator` is given. Every document gets the tokenizer's EOS appended; empty ones are
// skipped. Documents are tokenized in parallel (OpenMP) and written in input order, so the result does not
// depend on the thread count. The dataset is written into DIR.partial and renamed to DIR at the end; after
// each input file a progress record is saved there, and a rerun with the same inputs and options resumes
// after the last completed file.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tsp {

struct TokenizeCorpusOptions {
  std::vector<std::string> inputs;
  std::string output;
  std::string text_key = "text";  // .jsonl field
  std::string separator;          // split other files into documents at this string (empty: one per file)
  bool add_special_tokens = true;
  bool split_special_tokens = false;
  std::string eos_token;  // override of the tokenizer's EOS (a token's text)
  bool progress = true;   // progress bar on stderr when it is a terminal
};

// Returns the manifest written.
nlohmann::json tokenize_corpus(const Tokenizer& tokenizer, const TokenizeCorpusOptions& options);

}  // namespace tsp

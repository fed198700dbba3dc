// The tokenizer every command that reads or writes text goes through: a model directory's own tokenizer
// (HF tokenizer.json, or SentencePiece tokenizer.model) when it has one, else the byte tokenizer.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tsp {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`; add_special_tokens applies the tokenizer's post-processor (e.g. Llama's BOS).
  // Special tokens written in the text (e.g. "<|endoftext|>") are recognised as such unless
  // split_special_tokens is set, in which case they are tokenized as plain text (HF's split_special_tokens).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                                      bool split_special_tokens = false) const = 0;
  // Text of `ids`; ids outside the vocabulary are dropped (as HF tokenizers does).
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const = 0;
  // One more than the largest token id (the smallest vocab_size a model needs).
  virtual int64_t vocab_size() const = 0;
  // The end-of-sequence token (appended to every document of a tokenized dataset), if the tokenizer has one.
  virtual std::optional<int32_t> eos_id() const = 0;
  // The id of a token given as its text (e.g. "<|endoftext|>"), if it is one token of the vocabulary.
  virtual std::optional<int32_t> token_id(const std::string& token) const = 0;
  // What it is and where it came from, for log lines ("HF tokenizer.json (BPE, 32000 tokens) from DIR").
  virtual std::string describe() const = 0;
  // The files that make it up (copied into checkpoints and datasets); empty for the byte tokenizer.
  virtual std::vector<std::string> files() const = 0;
};

// Whether `dir` holds a tokenizer (tokenizer.json, else tokenizer.model).
bool has_tokenizer(const std::string& dir);
// The tokenizer of `dir`: tokenizer.json (with tokenizer_config.json when present) is preferred, as HF's
// AutoTokenizer prefers the fast tokenizer; else tokenizer.model. A directory with neither is an error.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);
// The entry point for commands that take text: `dir`'s tokenizer when it has one, else the byte tokenizer.
std::unique_ptr<Tokenizer> load_tokenizer_for(const std::string& dir);
// Copies a tokenizer's files into `dir` (each under a temporary name, then renamed into place).
void copy_tokenizer_files(const Tokenizer& tokenizer, const std::string& dir);

}  // namespace tsp

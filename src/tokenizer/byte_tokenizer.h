// The byte tokenizer: every byte of the text is one token (0..255). The fallback for model directories that
// have no tokenizer of their own, and what the built-in tasks are written in.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace tsp {

// Bytes are tokens 0..255.
std::vector<int32_t> byte_tokenize(const std::string& text);
std::string byte_detokenize(const std::vector<int32_t>& tokens);  // tokens >= 256 are dropped

class ByteTokenizer : public Tokenizer {
 public:
  std::vector<int32_t> encode(std::string_view text, bool = true, bool = false) const override {
    return byte_tokenize(std::string(text));
  }
  std::string decode(const std::vector<int32_t>& ids, bool = false) const override {
    return byte_detokenize(ids);
  }
  int64_t vocab_size() const override { return 256; }
  std::optional<int32_t> eos_id() const override { return std::nullopt; }
  std::optional<int32_t> token_id(const std::string&) const override { return std::nullopt; }
  std::string describe() const override { return "byte tokenizer (256 tokens)"; }
  std::vector<std::string> files() const override { return {}; }
};

}  // namespace tsp

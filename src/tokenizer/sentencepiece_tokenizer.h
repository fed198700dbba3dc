// A SentencePiece tokenizer.model through Debian's libsentencepiece (the reference implementation itself).
// BOS/EOS are added as HF's LlamaTokenizer does: add_bos_token (default: true when the model has a BOS) and
// add_eos_token (default false) from tokenizer_config.json.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/tokenizer.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace tsp {

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const std::string& model_path, const std::string& config_path);
  ~SentencePieceTokenizer() override;

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                              bool split_special_tokens = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override;
  std::optional<int32_t> eos_id() const override;
  std::optional<int32_t> token_id(const std::string& token) const override;
  std::string describe() const override;
  std::vector<std::string> files() const override { return files_; }

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  bool add_bos_ = true, add_eos_ = false;
  std::string path_;
  std::vector<std::string> files_;
};

}  // namespace tsp

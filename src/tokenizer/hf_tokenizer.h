// A Hugging Face tokenizer.json (the `tokenizers` library's format) as a pipeline of small components, each
// chosen by its "type": added tokens -> normalizer -> pre-tokenizer -> model (BPE) -> post-processor on the
// way in; model vocabulary -> decoder on the way out. tokenizer_config.json, when present, names the EOS
// token and says whether decode cleans up spaces before punctuation (transformers'
// clean_up_tokenization_spaces).
#pragma once

#include <memory>
#include <string>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/bpe.h"
#include "tokenizer/decoders.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/tokenizer.h"

namespace tsp {

class HfTokenizer : public Tokenizer {
 public:
  // config_path may be empty (no tokenizer_config.json).
  HfTokenizer(const std::string& tokenizer_json_path, const std::string& config_path);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true,
                              bool split_special_tokens = false) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const override;
  int64_t vocab_size() const override { return vocab_size_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> token_id(const std::string& token) const override;
  std::string describe() const override;
  std::vector<std::string> files() const override { return files_; }

 private:
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::unique_ptr<BpeModel> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  AddedVocabulary added_;
  std::optional<int32_t> eos_;
  bool clean_up_spaces_ = false;
  int64_t vocab_size_ = 0;
  std::string dir_;
  std::vector<std::string> files_;
};

// transformers' clean_up_tokenization: " ." -> "." and the like (English contractions and punctuation).
std::string clean_up_tokenization(std::string text);

}  // namespace tsp

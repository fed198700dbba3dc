// Added tokens of tokenizer.json ("added_tokens"): special and user-added tokens matched in the text before
// the normalizer and the model see it, as HF tokenizers' AddedVocabulary does. Tokens with normalized=false
// are found in the raw text; tokens with normalized=true in the normalized text, by their normalized form.
// Matching is leftmost-longest; single_word, lstrip and rstrip behave as in HF.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/normalizers.h"
#include "tokenizer/pre_tokenizers.h"

namespace tsp {

struct AddedToken {
  std::string content;
  int32_t id = 0;
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A piece of input after added-token extraction: either an added token (id >= 0) or text for the pipeline.
struct Section {
  PreToken text;
  int32_t token = -1;
};

class AddedVocabulary {
 public:
  AddedVocabulary() = default;
  AddedVocabulary(const nlohmann::json& added_tokens, const Normalizer* normalizer);

  // Splits `text` around added tokens and normalizes the text between them.
  std::vector<Section> extract_and_normalize(std::string_view text, const Normalizer* normalizer,
                                             bool split_special_tokens) const;
  // The content of added token `id` as decode shows it, or nullptr when `id` is not an added token.
  const std::string* decoded_content(int32_t id) const;
  bool is_special(int32_t id) const;
  std::optional<int32_t> id_of(const std::string& content) const;
  int64_t max_id() const { return max_id_; }

 private:
  // Leftmost-longest matching of many literal strings: a byte trie walked from each position whose byte can
  // start a token (real text has few such positions, so the walk is rare).
  struct Trie {
    struct Node {
      std::unordered_map<unsigned char, int> next;
      int token = -1;  // index into tokens_ of the token ending here
    };
    std::vector<Node> nodes{1};
    bool first_byte[256] = {};
    void insert(std::string_view s, int token);
    // Longest token starting at `at` (index into tokens_, and its end), or -1.
    std::pair<int, size_t> longest_at(std::string_view text, size_t at) const;
  };
  void split_on(const Trie& trie, const Section& in, bool split_special_tokens,
                std::vector<Section>& out) const;

  std::vector<AddedToken> tokens_;
  std::vector<std::string> normalized_content_;  // per token: what decode shows and normalized matching uses
  std::unordered_map<int32_t, size_t> by_id_;
  Trie raw_, normalized_;
  int64_t max_id_ = -1;
};

}  // namespace tsp

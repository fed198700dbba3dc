// The BPE model of tokenizer.json ("model": {"type": "BPE"}): a word's characters are looked up, then merged
// pair by pair, lowest merge rank first (leftmost on ties), exactly as HF tokenizers' BPE::merge_word with
// dropout off. Characters outside the vocabulary become <0xXX> byte tokens under byte_fallback, else the
// unknown token (fused when fuse_unk), else nothing. ignore_merges: a word that is itself in the vocabulary
// is that token (Llama 3).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tsp {

// Hashes std::string and std::string_view alike, so lookups by view allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  explicit BpeModel(const nlohmann::json& model);
  // Appends the ids of one pre-tokenized word. Thread-safe (each thread has its own word cache).
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;
  const Vocab& vocab() const { return vocab_; }
  // Token text by id ("" for an id the model does not have).
  const std::string& id_to_token(int32_t id) const;
  int64_t max_id() const { return int64_t(id_to_token_.size()) - 1; }

 private:
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  Vocab vocab_;
  std::vector<std::string> id_to_token_;
  struct MergeTarget {
    int32_t rank, new_id;
  };
  std::unordered_map<uint64_t, MergeTarget> merges_;
  std::string unk_token_, continuing_subword_prefix_, end_of_word_suffix_;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // <0xXX> tokens under byte_fallback (-1 where missing)
  uint64_t cache_id_;
};

}  // namespace tsp

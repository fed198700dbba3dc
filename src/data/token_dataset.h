// A tokenized dataset on disk (the nanoGPT / Megatron idea): a directory with
//   tokens.bin      every document's tokens, EOS-terminated, back to back: flat little-endian uint16 when the
//                   vocabulary fits in 16 bits, else uint32;
//   documents.idx   documents + 1 little-endian uint64 token offsets (document d is [idx[d], idx[d+1]));
//   manifest.json   format, version, dtype, vocab_size, eos_id, counts, the inputs and the tokenizer;
//   tokenizer/      a copy of the tokenizer's files (so training can copy it into its checkpoints).
// Readers memory-map the two binary files: opening a dataset reads nothing but the manifest.
#pragma once

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsp {

inline constexpr const char* kDatasetFormat = "tsp-tokenized-dataset";
inline constexpr int kDatasetVersion = 1;

// Appends documents to the binary files of a dataset directory being written (truncating them to `tokens` and
// `documents` first, so an interrupted write resumes where its last record says it was).
class TokenDatasetWriter {
 public:
  TokenDatasetWriter(const std::string& dir, int64_t vocab_size, int64_t tokens = 0, int64_t documents = 0);
  ~TokenDatasetWriter();
  TokenDatasetWriter(const TokenDatasetWriter&) = delete;
  TokenDatasetWriter& operator=(const TokenDatasetWriter&) = delete;

  // One document: its tokens (the caller appends EOS). Ids must lie in [0, vocab_size).
  void add_document(const std::vector<int32_t>& tokens);
  // Flushes both files (after which tokens() and documents() describe what is on disk).
  void flush();
  // Writes the final offset and closes the files; the manifest is the caller's.
  void finish();
  int64_t tokens() const { return tokens_; }
  int64_t documents() const { return documents_; }
  int bytes_per_token() const { return width_; }

 private:
  std::string dir_;
  int64_t vocab_size_;
  int width_;
  int64_t tokens_, documents_;
  std::FILE* bin_ = nullptr;
  std::FILE* idx_ = nullptr;
  std::vector<unsigned char> buf_;
};

class TokenDataset {
 public:
  explicit TokenDataset(const std::string& dir);
  ~TokenDataset();
  TokenDataset(const TokenDataset&) = delete;
  TokenDataset& operator=(const TokenDataset&) = delete;

  int64_t documents() const { return documents_; }
  int64_t tokens() const { return tokens_; }
  int64_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }
  int64_t doc_begin(int64_t d) const { return int64_t(index_[d]); }
  int64_t doc_length(int64_t d) const { return int64_t(index_[d + 1] - index_[d]); }
  // Tokens [begin, begin + n) of tokens.bin into out.
  void read(int64_t begin, int64_t n, int32_t* out) const;
  const nlohmann::json& manifest() const { return manifest_; }
  const std::string& dir() const { return dir_; }
  // dir/tokenizer when the dataset carries its tokenizer, else empty.
  std::string tokenizer_dir() const;

 private:
  std::string dir_;
  nlohmann::json manifest_;
  int64_t documents_ = 0, tokens_ = 0, vocab_size_ = 0;
  int32_t eos_id_ = -1;
  int width_ = 2;
  const unsigned char* data_ = nullptr;
  size_t data_bytes_ = 0;
  const uint64_t* index_ = nullptr;
  size_t index_bytes_ = 0;
};

}  // namespace tsp

// Hugging Face's sharded safetensors layout, as transformers' save_pretrained writes it and from_pretrained
// reads it. A set of tensors named STEM ("model", "optimizer") lives in a directory either as
//   STEM.safetensors                                   (everything fits in one shard), or as
//   STEM-00001-of-0000N.safetensors ... + STEM.safetensors.index.json
// where the index is {"metadata": {"total_size": <tensor bytes>, ...}, "weight_map": {tensor: file}}. Shards
// are cut as huggingface_hub does: tensors in order, a new shard when the next tensor would take the current
// one over the maximum size, and a tensor larger than the maximum alone in its own shard.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/safetensors.h"

namespace tsp {

// save_pretrained's default max_shard_size, "5GB" (decimal, as huggingface_hub counts).
inline constexpr int64_t kDefaultMaxShardBytes = 5'000'000'000;

// HF's size strings: "5GB", "500MB", "10KB" (powers of 10), "2GiB", "512MiB" (powers of 2), or a plain
// number of bytes; units are case-insensitive, a decimal fraction is allowed ("1.5GB"). UsageError naming the
// string otherwise.
int64_t parse_shard_size(const std::string& text);

// The shard (0-based) of each tensor, given their sizes in order.
std::vector<int> plan_shards(const std::vector<int64_t>& tensor_bytes, int64_t max_shard_bytes);
std::string shard_file_name(const std::string& stem, int shard, int num_shards);  // shard is 0-based
bool is_shard_file_name(const std::string& stem, const std::string& file);        // STEM-ddddd-of-ddddd...
std::string single_file_name(const std::string& stem);                            // STEM.safetensors
std::string index_file_name(const std::string& stem);  // STEM.safetensors.index.json

// Every file of a set, opened and validated up front (the index, then each shard's header), so that a bad
// file is refused before any tensor is read.
class SafetensorsSetReader {
 public:
  // dir/STEM.safetensors if it exists (as transformers prefers it), else the index and its shards.
  SafetensorsSetReader(const std::string& dir, const std::string& stem);
  // Whether dir holds a set named stem in either form.
  static bool exists(const std::string& dir, const std::string& stem);

  bool sharded() const { return sharded_; }
  bool has(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;  // throws naming the missing tensor and the set
  const SafetensorsReader& file_of(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::vector<std::unique_ptr<SafetensorsReader>>& files() const { return files_; }
  // Bytes of every file of the set.
  uint64_t total_file_bytes() const;
  // What has been read through every file so far.
  ReadStats stats() const;

  template <class T>
  void read_block(const std::string& name, const std::vector<int64_t>& expect_shape, int64_t row_begin,
                  int64_t rows, int64_t col_begin, int64_t cols, T* out) const {
    file_of(name).read_block(name, expect_shape, row_begin, rows, col_begin, cols, out);
  }

 private:
  std::string where_str() const;
  std::string dir_, stem_;
  bool sharded_ = false;
  std::vector<std::unique_ptr<SafetensorsReader>> files_;
  std::map<std::string, const SafetensorsReader*> where_;
};

// Declare every tensor, then write tensors or blocks of them in any order, then finish(). Each shard file is
// written under a temporary name and renamed when its last element is written (so a set of thousands of
// shards written in order keeps one file open at a time), the index (when sharded) by finish(), which also
// removes the files of an earlier save of the same stem that this one does not use. The directory as a whole
// is the caller's to make atomic (checkpoint.cpp writes it under a temporary name).
class SafetensorsSetWriter {
 public:
  SafetensorsSetWriter(std::string dir, std::string stem, int64_t max_shard_bytes = kDefaultMaxShardBytes);

  void set_metadata(const std::string& key, const std::string& value);  // every shard's __metadata__
  void declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);

  template <class T>
  void write_block(const std::string& name, int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols,
                   const T* data) {
    const int k = shard_of(name);
    writer(k).write_block(name, row_begin, rows, col_begin, cols, data);
    close_if_complete(k);
  }
  template <class T>
  void write(const std::string& name, const T* data, int64_t numel) {
    const int k = shard_of(name);
    writer(k).write(name, data, numel);
    close_if_complete(k);
  }
  void write_zeros(const std::string& name);
  void finish();

  // The files this set consists of (the shard plan is fixed by the first write, file_names() or finish()).
  std::vector<std::string> file_names();
  int64_t total_size() const { return total_size_; }

 private:
  struct Pending {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
  };
  struct Shard {
    std::string file;
    std::vector<size_t> tensors;  // indices into pending_
    std::unique_ptr<SafetensorsWriter> writer;
    bool done = false;
  };
  void plan();
  int shard_of(const std::string& name);
  SafetensorsWriter& writer(int shard);
  void close_if_complete(int shard);
  std::string dir_, stem_;
  int64_t max_shard_bytes_;
  std::vector<Pending> pending_;
  std::map<std::string, std::string> metadata_;
  std::vector<Shard> shards_;
  std::map<std::string, int> shard_index_;
  int64_t total_size_ = 0;
  bool planned_ = false;
};

}  // namespace tsp

// The safetensors file format (8-byte little-endian header length, JSON header, raw little-endian data).
// Hand-written because Debian packages no C++ safetensors library; the format is small and fully specified
// by the JSON header.
//
// Reading is in place: the header is validated first (nothing is allocated from what it claims beyond the
// header itself, capped at 100 MB), then the file is memory-mapped and a reader copies out only the blocks it
// is asked for, converting to the caller's type on the way. ReadStats counts what was copied, so a rank can
// show that it touched its own part of a checkpoint and not the rest. (A file truncated by someone else while
// it is mapped faults on access, as with any memory-mapped reader; the size is checked when it is opened.)
//
// Writing declares every tensor first (the header holds all offsets), then takes whole tensors or blocks of
// them in any order, written in place at their offsets, and finish() fsyncs and renames the temporary file
// onto the final name: a half-written file never appears under that name.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "model/dtype.h"

namespace tsp {

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

// What readers copied out of their files.
struct ReadStats {
  int64_t bytes = 0;  // tensor bytes copied (exactly the requested blocks)
  int64_t pages = 0;  // file pages those bytes lie on: what had to be read from storage for them
  ReadStats& operator+=(const ReadStats& o) {
    bytes += o.bytes;
    pages += o.pages;
    return *this;
  }
};

class SafetensorsReader {
 public:
  // Opens the file, validates the header (known dtypes, offsets inside the file, sizes matching shapes, no
  // overlaps; errors name the file, the tensor and the problem) and maps it read-only.
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const { return path_; }
  uint64_t file_size() const { return file_size_; }
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the missing tensor
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Reads the block rows [row_begin, row_begin + rows) x cols [col_begin, col_begin + cols) of a 2-D tensor
  // (a 1-D tensor is one row) into out (row-major [rows, cols]), converting F32/F64/F16/BF16 to T.
  // Throws if the tensor's shape differs from `expect_shape` or the block is out of range.
  template <class T>
  void read_block(const std::string& name, const std::vector<int64_t>& expect_shape, int64_t row_begin,
                  int64_t rows, int64_t col_begin, int64_t cols, T* out) const;
  // The whole tensor.
  template <class T>
  void read(const std::string& name, const std::vector<int64_t>& expect_shape, T* out) const;

  // Totals over every read of this reader.
  const ReadStats& stats() const { return stats_; }

 private:
  struct Span;
  template <class T>
  void copy_spans(const TensorInfo& t, std::vector<Span>& spans) const;
  std::string path_;
  const unsigned char* map_ = nullptr;
  uint64_t file_size_ = 0;
  uint64_t data_offset_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
  mutable ReadStats stats_;
  mutable int64_t last_page_ = -1;  // the last page counted, so that neighbouring rows share a page once
};

class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path);
  ~SafetensorsWriter();  // an unfinished writer removes its temporary file
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void set_metadata(const std::string& key, const std::string& value);
  void declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);

  // Data, converted from T to the declared dtype (BF16 and F16 round to nearest even). Tensors and blocks may
  // come in any order once every tensor is declared; each element must be written exactly once (blocks are
  // placed at their offsets; element counts are checked, overlaps are the caller's to avoid).
  template <class T>
  void write(const std::string& name, const T* data, int64_t numel);
  // Block rows [row_begin, row_begin + rows) x cols [col_begin, col_begin + cols) of a 1-D (one row) or 2-D
  // tensor, from data (row-major [rows, cols]).
  template <class T>
  void write_block(const std::string& name, int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols,
                   const T* data);
  // The whole tensor reads as zeros without writing its bytes (a hole in a sparse file).
  void write_zeros(const std::string& name);
  void finish();

  // Every element of every declared tensor has been written.
  bool complete() const;
  // Bytes of the data section (every declared tensor).
  uint64_t data_bytes() const { return declared_.empty() ? 0 : declared_.back().end; }

 private:
  TensorInfo& find(const std::string& name, int64_t add_elements);
  void write_header();
  void pwrite_all(const unsigned char* p, uint64_t n, uint64_t offset);
  std::string path_, tmp_path_;
  int fd_ = -1;
  std::vector<TensorInfo> declared_;
  std::map<std::string, size_t> index_;
  std::vector<int64_t> written_;  // elements written per declared tensor
  int64_t elements_declared_ = 0, elements_written_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<unsigned char> buf_;
  uint64_t data_offset_ = 0;
  bool header_written_ = false;
  bool finished_ = false;
};

}  // namespace tsp

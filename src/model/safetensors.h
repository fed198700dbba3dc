// The safetensors file format (8-byte little-endian header length, JSON header, raw little-endian data),
// read with validation and written atomically. Hand-written because Debian packages no C++ safetensors
// library; the format is small and fully specified by the JSON header.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tsp {

enum class DType { F32, F64, F16, BF16 };
std::string dtype_name(DType t);
int64_t dtype_size(DType t);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data section
  uint64_t end = 0;
  int64_t numel() const;
};

class SafetensorsReader {
 public:
  // Opens and validates the header: known dtypes, offsets inside the file, sizes matching shapes, no
  // overlaps. Errors name the file, the tensor and the problem.
  explicit SafetensorsReader(const std::string& path);
  ~SafetensorsReader();
  SafetensorsReader(const SafetensorsReader&) = delete;
  SafetensorsReader& operator=(const SafetensorsReader&) = delete;

  const std::string& path() const { return path_; }
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

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  uint64_t data_offset_ = 0;
  std::map<std::string, TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// Streaming writer: declare every tensor first (the header needs all offsets), then write the data of each
// in declaration order, then finish(), which flushes, fsyncs and renames the temp file onto `path`.
// Destroying an unfinished writer removes the temp file: a half-written checkpoint never appears.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path);
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void set_metadata(const std::string& key, const std::string& value);
  void declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape);
  // Data for the next declared tensor (must be `name`), converted from T to the declared dtype
  // (F32, F64, BF16 with round-to-nearest-even, F16).
  template <class T>
  void write(const std::string& name, const T* data, int64_t numel);
  void finish();

 private:
  void write_header();
  std::string path_, tmp_path_;
  std::FILE* f_ = nullptr;
  std::vector<TensorInfo> declared_;
  std::map<std::string, std::string> metadata_;
  size_t next_ = 0;
  bool header_written_ = false;
  bool finished_ = false;
};

}  // namespace tsp

#include "model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <type_traits>

#include "core/check.h"

namespace tsp {

namespace {

// The format stores little-endian data and we copy bytes straight into host numbers.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

// The reference implementation refuses headers above 100 MB; a larger length is a corrupt file, and refusing
// it early avoids a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Conversion buffers: big enough to amortise syscalls, small enough to stay in cache.
constexpr int64_t kChunkBytes = 1 << 20;

bool parse_dtype(const std::string& s, DType* out) {
  if (s == "F32")
    *out = DType::F32;
  else if (s == "F64")
    *out = DType::F64;
  else if (s == "F16")
    *out = DType::F16;
  else if (s == "BF16")
    *out = DType::BF16;
  else
    return false;
  return true;
}

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

// ---- number formats -------------------------------------------------------------------------------------

float bf16_to_float(uint16_t b) {
  return std::bit_cast<float>(uint32_t(b) << 16);
}

float f16_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    // Zero or subnormal: mant * 2^-24, exact in float.
    const float v = float(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (mant << 13));  // inf, NaN keeps payload
  return std::bit_cast<float>(sign | ((exp + 127 - 15) << 23) | (mant << 13));
}

// Rounds a double to the nearest value (ties to even) of a binary format with E exponent bits and M fraction
// bits, returning its bit pattern. Going through double is exact for float inputs, so one routine serves both
// source types without double rounding.
template <int E, int M>
uint32_t round_to_narrow(double x) {
  constexpr int kBias = (1 << (E - 1)) - 1;
  constexpr int kMinExp = 1 - kBias;
  constexpr uint32_t kInf = ((1u << E) - 1) << M;
  const uint64_t b = std::bit_cast<uint64_t>(x);
  const uint32_t sign = uint32_t(b >> 63) << (E + M);
  const int exp = int((b >> 52) & 0x7FF);
  const uint64_t frac = b & ((uint64_t(1) << 52) - 1);
  if (exp == 0x7FF) return sign | kInf | (frac ? (1u << (M - 1)) : 0u);  // inf, or a quiet NaN
  if (exp == 0) return sign;  // double zeros and subnormals are far below the narrow format's range
  const int e = exp - 1023;
  if (e > kBias) return sign | kInf;
  const uint64_t full = frac | (uint64_t(1) << 52);
  // Normal results keep M fraction bits; each step below the minimum exponent loses one more.
  const int shift = 52 - M + (e < kMinExp ? kMinExp - e : 0);
  if (shift > 53) return sign;  // less than half the smallest subnormal
  uint64_t q = full >> shift;
  const uint64_t rem = full & ((uint64_t(1) << shift) - 1);
  const uint64_t half = uint64_t(1) << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  // q carries the implicit bit for normals; adding it to (biased exponent - 1) lets a rounding carry step the
  // exponent (up to inf). For subnormals, q reaching 1 << M is exactly the smallest normal.
  const uint32_t mag = e < kMinExp ? uint32_t(q) : (uint32_t(e + kBias - 1) << M) + uint32_t(q);
  return sign | mag;
}

uint16_t float_to_bf16(float x) {
  uint32_t b = std::bit_cast<uint32_t>(x);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((b >> 16) | 0x40u);  // quiet NaN
  b += 0x7FFFu + ((b >> 16) & 1u);                                          // round to nearest even
  return uint16_t(b >> 16);
}

template <class T>
uint16_t to_bf16(T x) {
  if constexpr (std::is_same_v<T, float>)
    return float_to_bf16(x);
  else
    return uint16_t(round_to_narrow<8, 7>(double(x)));
}

template <class T>
uint16_t to_f16(T x) {
  return uint16_t(round_to_narrow<5, 10>(double(x)));
}

template <class U>
U load(const unsigned char* p) {
  U v;
  std::memcpy(&v, p, sizeof(U));
  return v;
}

template <class U>
void store(unsigned char* p, U v) {
  std::memcpy(p, &v, sizeof(U));
}

template <class T>
void decode(DType dt, const unsigned char* src, int64_t n, T* out) {
  switch (dt) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) out[i] = T(load<float>(src + 4 * i));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) out[i] = T(load<double>(src + 8 * i));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) out[i] = T(f16_to_float(load<uint16_t>(src + 2 * i)));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) out[i] = T(bf16_to_float(load<uint16_t>(src + 2 * i)));
      return;
  }
}

template <class T>
void encode(DType dt, const T* src, int64_t n, unsigned char* out) {
  switch (dt) {
    case DType::F32:
      for (int64_t i = 0; i < n; ++i) store<float>(out + 4 * i, float(src[i]));
      return;
    case DType::F64:
      for (int64_t i = 0; i < n; ++i) store<double>(out + 8 * i, double(src[i]));
      return;
    case DType::F16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, to_f16(src[i]));
      return;
    case DType::BF16:
      for (int64_t i = 0; i < n; ++i) store<uint16_t>(out + 2 * i, to_bf16(src[i]));
      return;
  }
}

// ---- reading ----------------------------------------------------------------------------------------------

void pread_exact(int fd, void* buf, uint64_t n, uint64_t offset, const std::string& path,
                 const std::string& what) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, n, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    TSP_CHECK(got >= 0, "safetensors '{}': reading {} failed: {}", path, what, std::strerror(errno));
    TSP_REQUIRE(got > 0, "safetensors '{}': file ends while reading {}: the file is truncated", path, what);
    p += got;
    n -= uint64_t(got);
    offset += uint64_t(got);
  }
}

// Reads elements [first, first + count) of tensor t (flat, row-major) in bounded chunks and converts them.
template <class T>
void read_elements(int fd, const std::string& path, uint64_t data_offset, const TensorInfo& t, int64_t first,
                   int64_t count, T* out, std::vector<unsigned char>& buf) {
  const int64_t esize = dtype_size(t.dtype);
  const int64_t per_chunk = std::max<int64_t>(1, kChunkBytes / esize);
  while (count > 0) {
    const int64_t n = std::min(count, per_chunk);
    buf.resize(size_t(n * esize));
    pread_exact(fd, buf.data(), uint64_t(n * esize), data_offset + t.begin + uint64_t(first * esize), path,
                fmt::format("tensor '{}'", t.name));
    decode(t.dtype, buf.data(), n, out);
    out += n;
    first += n;
    count -= n;
  }
}

}  // namespace

std::string dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

int64_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
      return 4;
    case DType::F64:
      return 8;
    case DType::F16:
      return 2;
    case DType::BF16:
      return 2;
  }
  return 0;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  f_ = std::fopen(path.c_str(), "rb");
  TSP_REQUIRE(f_ != nullptr, "cannot open safetensors file '{}': {}", path, std::strerror(errno));
  try {
    const int fd = fileno(f_);
    struct stat st {};
    TSP_CHECK(::fstat(fd, &st) == 0, "safetensors '{}': stat failed: {}", path, std::strerror(errno));
    const uint64_t file_size = uint64_t(st.st_size);
    TSP_REQUIRE(file_size >= 8, "safetensors '{}': file is {} bytes, too short for the 8-byte header length",
                path, file_size);
    uint64_t header_len = 0;
    pread_exact(fd, &header_len, 8, 0, path, "the header length");
    TSP_REQUIRE(header_len <= file_size - 8,
                "safetensors '{}': header length {} extends beyond the file ({} bytes): truncated or not a "
                "safetensors file",
                path, header_len, file_size);
    TSP_REQUIRE(header_len <= kMaxHeaderBytes, "safetensors '{}': header length {} exceeds the {} byte limit",
                path, header_len, kMaxHeaderBytes);
    std::string header(header_len, '\0');
    pread_exact(fd, header.data(), header_len, 8, path, "the header");
    data_offset_ = 8 + header_len;
    const uint64_t data_size = file_size - data_offset_;

    nlohmann::json j;
    try {
      j = nlohmann::json::parse(header);
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(fmt::format("safetensors '{}': header is not valid JSON: {}", path, e.what()));
    }
    TSP_REQUIRE(j.is_object(), "safetensors '{}': header must be a JSON object, got {}", path, j.type_name());

    for (const auto& [name, v] : j.items()) {
      if (name == "__metadata__") {
        TSP_REQUIRE(v.is_object(), "safetensors '{}': __metadata__ must be an object of strings", path);
        for (const auto& [k, mv] : v.items()) {
          TSP_REQUIRE(mv.is_string(), "safetensors '{}': __metadata__ value of '{}' must be a string, got {}",
                      path, k, mv.dump());
          metadata_[k] = mv.get<std::string>();
        }
        continue;
      }
      const std::string where = fmt::format("safetensors '{}': tensor '{}'", path, name);
      TSP_REQUIRE(v.is_object(), "{}: entry must be an object, got {}", where, v.dump());
      TensorInfo t;
      t.name = name;

      TSP_REQUIRE(v.contains("dtype") && v.at("dtype").is_string(), "{}: missing or non-string \"dtype\"",
                  where);
      const std::string dt = v.at("dtype").get<std::string>();
      TSP_REQUIRE(parse_dtype(dt, &t.dtype), "{}: unknown dtype \"{}\" (supported: F32, F64, F16, BF16)",
                  where, dt);

      TSP_REQUIRE(v.contains("shape") && v.at("shape").is_array(), "{}: missing or non-array \"shape\"",
                  where);
      int64_t numel = 1;
      for (const auto& d : v.at("shape")) {
        TSP_REQUIRE(
            d.is_number_unsigned() && d.get<uint64_t>() <= uint64_t(std::numeric_limits<int64_t>::max()),
            "{}: shape {} must hold non-negative integers", where, v.at("shape").dump());
        const int64_t dim = d.get<int64_t>();
        TSP_REQUIRE(!__builtin_mul_overflow(numel, dim, &numel), "{}: shape {} overflows", where,
                    v.at("shape").dump());
        t.shape.push_back(dim);
      }

      const auto& off = v.contains("data_offsets") ? v.at("data_offsets") : nlohmann::json();
      TSP_REQUIRE(
          off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
          "{}: \"data_offsets\" must be [begin, end] with non-negative integers, got {}", where, off.dump());
      t.begin = off[0].get<uint64_t>();
      t.end = off[1].get<uint64_t>();
      TSP_REQUIRE(t.begin <= t.end, "{}: data_offsets [{}, {}] end before they begin", where, t.begin, t.end);
      int64_t bytes = 0;
      TSP_REQUIRE(!__builtin_mul_overflow(numel, dtype_size(t.dtype), &bytes), "{}: shape {} overflows",
                  where, shape_str(t.shape));
      TSP_REQUIRE(t.end - t.begin == uint64_t(bytes),
                  "{}: data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {} bytes", where, t.begin,
                  t.end, t.end - t.begin, shape_str(t.shape), dt, bytes);
      TSP_REQUIRE(
          t.end <= data_size,
          "{}: data_offsets [{}, {}] extend beyond the data section ({} bytes): the file is truncated or "
          "corrupt",
          where, t.begin, t.end, data_size);
      tensors_.emplace(name, std::move(t));
    }

    // Overlapping tensors would alias each other's bytes; sort by start and compare neighbours.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& [name, t] : tensors_) {
      if (t.end > t.begin) by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
      const TensorInfo& a = *by_offset[i - 1];
      const TensorInfo& b = *by_offset[i];
      TSP_REQUIRE(b.begin >= a.end, "safetensors '{}': tensor '{}' [{}, {}] overlaps tensor '{}' [{}, {}]",
                  path, b.name, b.begin, b.end, a.name, a.begin, a.end);
    }
  } catch (...) {
    std::fclose(f_);
    f_ = nullptr;
    throw;
  }
}

SafetensorsReader::~SafetensorsReader() {
  if (f_) std::fclose(f_);
}

bool SafetensorsReader::has(const std::string& name) const {
  return tensors_.count(name) != 0;
}

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
  auto it = tensors_.find(name);
  TSP_REQUIRE(it != tensors_.end(), "safetensors '{}': missing tensor '{}' (the file has {} tensors)", path_,
              name, tensors_.size());
  return it->second;
}

std::vector<std::string> SafetensorsReader::names() const {
  std::vector<std::string> out;
  out.reserve(tensors_.size());
  for (const auto& [name, t] : tensors_) out.push_back(name);
  return out;
}

template <class T>
void SafetensorsReader::read_block(const std::string& name, const std::vector<int64_t>& expect_shape,
                                   int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols,
                                   T* out) const {
  const TensorInfo& t = info(name);
  TSP_REQUIRE(t.shape == expect_shape, "safetensors '{}': tensor '{}' has shape {}, expected {}", path_, name,
              shape_str(t.shape), shape_str(expect_shape));
  TSP_REQUIRE(t.shape.size() == 1 || t.shape.size() == 2,
              "safetensors '{}': tensor '{}' has shape {}; block reads need a 1-D or 2-D tensor", path_, name,
              shape_str(t.shape));
  const int64_t n_rows = t.shape.size() == 2 ? t.shape[0] : 1;
  const int64_t n_cols = t.shape.back();
  TSP_REQUIRE(row_begin >= 0 && rows >= 0 && row_begin + rows <= n_rows && col_begin >= 0 && cols >= 0 &&
                  col_begin + cols <= n_cols,
              "safetensors '{}': block rows [{}, {}) x cols [{}, {}) is outside tensor '{}' of shape {}",
              path_, row_begin, row_begin + rows, col_begin, col_begin + cols, name, shape_str(t.shape));
  std::vector<unsigned char> buf;
  const int fd = fileno(f_);
  if (cols == n_cols) {
    // Whole rows are contiguous on disk: one streamed range.
    read_elements(fd, path_, data_offset_, t, row_begin * n_cols, rows * cols, out, buf);
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    read_elements(fd, path_, data_offset_, t, (row_begin + r) * n_cols + col_begin, cols, out + r * cols,
                  buf);
  }
}

template <class T>
void SafetensorsReader::read(const std::string& name, const std::vector<int64_t>& expect_shape,
                             T* out) const {
  const TensorInfo& t = info(name);
  TSP_REQUIRE(t.shape == expect_shape, "safetensors '{}': tensor '{}' has shape {}, expected {}", path_, name,
              shape_str(t.shape), shape_str(expect_shape));
  std::vector<unsigned char> buf;
  read_elements(fileno(f_), path_, data_offset_, t, 0, t.numel(), out, buf);
}

template void SafetensorsReader::read_block<float>(const std::string&, const std::vector<int64_t>&, int64_t,
                                                   int64_t, int64_t, int64_t, float*) const;
template void SafetensorsReader::read_block<double>(const std::string&, const std::vector<int64_t>&, int64_t,
                                                    int64_t, int64_t, int64_t, double*) const;
template void SafetensorsReader::read<float>(const std::string&, const std::vector<int64_t>&, float*) const;
template void SafetensorsReader::read<double>(const std::string&, const std::vector<int64_t>&, double*) const;

// ---- writing ----------------------------------------------------------------------------------------------

SafetensorsWriter::SafetensorsWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {
  f_ = std::fopen(tmp_path_.c_str(), "wb");
  TSP_REQUIRE(f_ != nullptr, "cannot create '{}': {}", tmp_path_, std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (finished_) return;
  if (f_) std::fclose(f_);
  std::remove(tmp_path_.c_str());
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
  TSP_CHECK(!header_written_, "safetensors writer '{}': metadata '{}' set after tensor data began", path_,
            key);
  metadata_[key] = value;
}

void SafetensorsWriter::declare(const std::string& name, DType dtype, const std::vector<int64_t>& shape) {
  TSP_CHECK(!header_written_, "safetensors writer '{}': tensor '{}' declared after tensor data began", path_,
            name);
  TSP_CHECK(!name.empty() && name != "__metadata__", "safetensors writer '{}': invalid tensor name '{}'",
            path_, name);
  for (const auto& t : declared_) {
    TSP_CHECK(t.name != name, "safetensors writer '{}': tensor '{}' declared twice", path_, name);
  }
  TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = shape;
  for (int64_t d : shape) {
    TSP_CHECK(d >= 0, "safetensors writer '{}': tensor '{}' has negative dimension in {}", path_, name,
              shape_str(shape));
  }
  t.begin = declared_.empty() ? 0 : declared_.back().end;
  t.end = t.begin + uint64_t(t.numel() * dtype_size(dtype));
  declared_.push_back(std::move(t));
}

void SafetensorsWriter::write_header() {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& t : declared_) {
    j[t.name] = {{"dtype", dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {t.begin, t.end}}};
  }
  if (!metadata_.empty()) j["__metadata__"] = metadata_;
  std::string header = j.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  header.resize((header.size() + 7) / 8 * 8, ' ');
  const uint64_t n = header.size();
  bool ok = std::fwrite(&n, 8, 1, f_) == 1;
  ok = ok && std::fwrite(header.data(), 1, header.size(), f_) == header.size();
  TSP_CHECK(ok, "cannot write '{}': {}", tmp_path_, std::strerror(errno));
  header_written_ = true;
}

template <class T>
void SafetensorsWriter::write(const std::string& name, const T* data, int64_t numel) {
  TSP_CHECK(!finished_, "safetensors writer '{}': write of '{}' after finish()", path_, name);
  if (!header_written_) write_header();
  TSP_CHECK(next_ < declared_.size(),
            "safetensors writer '{}': write of '{}' but all {} declared tensors are written", path_, name,
            declared_.size());
  const TensorInfo& t = declared_[next_];
  TSP_CHECK(t.name == name,
            "safetensors writer '{}': tensors are written in declaration order; expected '{}', got '{}'",
            path_, t.name, name);
  TSP_CHECK(numel == t.numel(), "safetensors writer '{}': tensor '{}' of shape {} has {} elements, got {}",
            path_, name, shape_str(t.shape), t.numel(), numel);
  const int64_t esize = dtype_size(t.dtype);
  const int64_t per_chunk = std::max<int64_t>(1, kChunkBytes / esize);
  std::vector<unsigned char> buf(size_t(std::min(numel, per_chunk) * esize));
  for (int64_t i = 0; i < numel; i += per_chunk) {
    const int64_t n = std::min(per_chunk, numel - i);
    encode(t.dtype, data + i, n, buf.data());
    TSP_CHECK(std::fwrite(buf.data(), size_t(esize), size_t(n), f_) == size_t(n), "cannot write '{}': {}",
              tmp_path_, std::strerror(errno));
  }
  ++next_;
}

template void SafetensorsWriter::write<float>(const std::string&, const float*, int64_t);
template void SafetensorsWriter::write<double>(const std::string&, const double*, int64_t);

void SafetensorsWriter::finish() {
  TSP_CHECK(!finished_, "safetensors writer '{}': finish() called twice", path_);
  if (!header_written_) write_header();
  TSP_CHECK(next_ == declared_.size(), "safetensors writer '{}': finish() before tensor '{}' was written",
            path_, declared_[next_].name);
  bool ok = std::fflush(f_) == 0;
  ok = ok && ::fsync(fileno(f_)) == 0;
  const int err = errno;
  ok = std::fclose(f_) == 0 && ok;
  f_ = nullptr;
  TSP_CHECK(ok, "cannot write '{}': {}", tmp_path_, std::strerror(err));
  TSP_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp_path_,
            path_, std::strerror(errno));
  finished_ = true;
  // Make the rename itself durable; a failure here leaves a complete file, so it is not an error.
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

}  // namespace tsp

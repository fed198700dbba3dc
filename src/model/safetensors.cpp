#include "model/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>

#include "core/atomic_file.h"
#include "core/check.h"

namespace tsp {

namespace {

// The reference implementation refuses headers above 100 MB; a larger length is a corrupt file, and refusing
// it before reading avoids a huge allocation.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Encoding buffer of the writer: big enough to amortise syscalls, small enough to stay in cache.
constexpr int64_t kChunkBytes = 1 << 20;
// The reader asks the kernel for one window of a block ahead while it copies the current one, and lets go
// of the window's mapped pages after copying: a rank's resident file pages stay below two windows.
constexpr uint64_t kWindowBytes = 32ull << 20;

std::string shape_str(const std::vector<int64_t>& s) {
  return fmt::format("[{}]", fmt::join(s, ", "));
}

uint64_t page_size() {
  static const uint64_t p = uint64_t(::sysconf(_SC_PAGESIZE));
  return p;
}

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

// madvise over the whole pages covering [p, p + n).
void advise(const unsigned char* p, uint64_t n, int advice) {
  if (n == 0) return;
  const uint64_t ps = page_size();
  const auto a = reinterpret_cast<uintptr_t>(p);
  const uintptr_t first = a / ps * ps, last = (a + n + ps - 1) / ps * ps;
  // Advice only changes what the kernel reads ahead or keeps mapped; a refusal costs speed, not correctness.
  (void)::madvise(reinterpret_cast<void*>(first), last - first, advice);
}

// Parses the JSON header into tensors and metadata, checking every entry against the data section's size.
void parse_header(const std::string& path, const std::string& header, uint64_t data_size,
                  std::map<std::string, TensorInfo>& tensors, std::map<std::string, std::string>& metadata) {
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
        metadata[k] = mv.get<std::string>();
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
    const auto parsed = parse_dtype(dt);
    TSP_REQUIRE(parsed.has_value(), "{}: unknown dtype \"{}\" (supported: F32, F64, F16, BF16)", where, dt);
    t.dtype = *parsed;

    TSP_REQUIRE(v.contains("shape") && v.at("shape").is_array(), "{}: missing or non-array \"shape\"", where);
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
    TSP_REQUIRE(!__builtin_mul_overflow(numel, dtype_size(t.dtype), &bytes), "{}: shape {} overflows", where,
                shape_str(t.shape));
    TSP_REQUIRE(t.end - t.begin == uint64_t(bytes),
                "{}: data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {} bytes", where, t.begin,
                t.end, t.end - t.begin, shape_str(t.shape), dt, bytes);
    TSP_REQUIRE(
        t.end <= data_size,
        "{}: data_offsets [{}, {}] extend beyond the data section ({} bytes): the file is truncated or "
        "corrupt",
        where, t.begin, t.end, data_size);
    tensors.emplace(name, std::move(t));
  }

  // Overlapping tensors would alias each other's bytes; sort by start and compare neighbours.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& [name, t] : tensors) {
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
}

// The rows x cols block of a [n_rows, n_cols] tensor is valid.
void check_block(const std::string& path, const TensorInfo& t, int64_t n_rows, int64_t n_cols,
                 int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols) {
  TSP_REQUIRE(row_begin >= 0 && rows >= 0 && row_begin + rows <= n_rows && col_begin >= 0 && cols >= 0 &&
                  col_begin + cols <= n_cols,
              "safetensors '{}': block rows [{}, {}) x cols [{}, {}) is outside tensor '{}' of shape {}",
              path, row_begin, row_begin + rows, col_begin, col_begin + cols, t.name, shape_str(t.shape));
}

// Rows and columns of a tensor seen as a matrix (a 1-D tensor is one row); block access needs 1-D or 2-D.
std::pair<int64_t, int64_t> matrix_shape(const std::string& path, const TensorInfo& t) {
  TSP_REQUIRE(t.shape.size() == 1 || t.shape.size() == 2,
              "safetensors '{}': tensor '{}' has shape {}; block access needs a 1-D or 2-D tensor", path,
              t.name, shape_str(t.shape));
  return {t.shape.size() == 2 ? t.shape[0] : 1, t.shape.back()};
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

// ---- reading ----------------------------------------------------------------------------------------------

// One contiguous run of elements in the file and where its values go.
struct SafetensorsReader::Span {
  uint64_t offset;  // file offset of the first byte
  int64_t n;        // elements
  void* out;
};

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
  // The descriptor is closed once the file is mapped (the mapping keeps the file), so a set of thousands of
  // shards holds no descriptors.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TSP_REQUIRE(fd >= 0, "cannot open safetensors file '{}': {}", path, std::strerror(errno));
  try {
    struct stat st {};
    TSP_CHECK(::fstat(fd, &st) == 0, "safetensors '{}': stat failed: {}", path, std::strerror(errno));
    TSP_REQUIRE(S_ISREG(st.st_mode), "safetensors '{}' is not a regular file", path);
    file_size_ = uint64_t(st.st_size);
    TSP_REQUIRE(file_size_ >= 8, "safetensors '{}': file is {} bytes, too short for the 8-byte header length",
                path, file_size_);
    // Only the blocks asked for are to be read: no read-ahead past the header into the tensors.
    (void)::posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
    uint64_t header_len = 0;
    pread_exact(fd, &header_len, 8, 0, path, "the header length");
    TSP_REQUIRE(header_len <= file_size_ - 8,
                "safetensors '{}': header length {} extends beyond the file ({} bytes): truncated or not a "
                "safetensors file",
                path, header_len, file_size_);
    TSP_REQUIRE(header_len <= kMaxHeaderBytes,
                "safetensors '{}': header length {} exceeds the {} byte limit of the format", path,
                header_len, kMaxHeaderBytes);
    std::string header(header_len, '\0');
    pread_exact(fd, header.data(), header_len, 8, path, "the header");
    data_offset_ = 8 + header_len;
    parse_header(path, header, file_size_ - data_offset_, tensors_, metadata_);

    void* m = ::mmap(nullptr, file_size_, PROT_READ, MAP_SHARED, fd, 0);
    TSP_CHECK(m != MAP_FAILED, "safetensors '{}': mmap of {} bytes failed: {}", path, file_size_,
              std::strerror(errno));
    map_ = static_cast<const unsigned char*>(m);
    // Page faults bring in one page each; the reader asks for whole spans itself (MADV_WILLNEED).
    advise(map_, file_size_, MADV_RANDOM);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

SafetensorsReader::~SafetensorsReader() {
  if (map_) ::munmap(const_cast<unsigned char*>(map_), file_size_);
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
void SafetensorsReader::copy_spans(const TensorInfo& t, std::vector<Span>& spans) const {
  const uint64_t esize = uint64_t(dtype_size(t.dtype));
  const uint64_t ps = page_size();
  // Windows of consecutive spans covering at most kWindowBytes of the file (a longer span is its own window).
  auto window_end = [&](size_t from) {
    size_t j = from + 1;
    while (j < spans.size() &&
           spans[j].offset + uint64_t(spans[j].n) * esize - spans[from].offset <= kWindowBytes)
      ++j;
    return j;
  };
  auto prefetch = [&](size_t from, size_t to) {
    for (size_t k = from; k < to; ++k)
      advise(map_ + spans[k].offset, uint64_t(spans[k].n) * esize, MADV_WILLNEED);
  };
  size_t begin = 0, end = spans.empty() ? 0 : window_end(0);
  prefetch(begin, end);
  while (begin < spans.size()) {
    const size_t next = end < spans.size() ? window_end(end) : end;
    prefetch(end, next);
    for (size_t k = begin; k < end; ++k) {
      const Span& s = spans[k];
      const uint64_t bytes = uint64_t(s.n) * esize;
      decode_elements(t.dtype, map_ + s.offset, s.n, static_cast<T*>(s.out));
      stats_.bytes += int64_t(bytes);
      const int64_t first = int64_t(s.offset / ps), last = int64_t((s.offset + bytes - 1) / ps);
      stats_.pages += last - first + (first == last_page_ ? 0 : 1);  // a page shared with the last span once
      last_page_ = last;
    }
    const uint64_t lo = spans[begin].offset;
    const uint64_t hi = spans[end - 1].offset + uint64_t(spans[end - 1].n) * esize;
    advise(map_ + lo, hi - lo, MADV_DONTNEED);  // our mapping lets go; the page cache decides what stays
    begin = end;
    end = next;
  }
}

template <class T>
void SafetensorsReader::read_block(const std::string& name, const std::vector<int64_t>& expect_shape,
                                   int64_t row_begin, int64_t rows, int64_t col_begin, int64_t cols,
                                   T* out) const {
  const TensorInfo& t = info(name);
  TSP_REQUIRE(t.shape == expect_shape, "safetensors '{}': tensor '{}' has shape {}, expected {}", path_, name,
              shape_str(t.shape), shape_str(expect_shape));
  const auto [n_rows, n_cols] = matrix_shape(path_, t);
  check_block(path_, t, n_rows, n_cols, row_begin, rows, col_begin, cols);
  if (rows == 0 || cols == 0) return;
  const uint64_t esize = uint64_t(dtype_size(t.dtype));
  const uint64_t base = data_offset_ + t.begin;
  // Spans of at most one window each: whole rows are one contiguous run, a column block one run per row.
  const int64_t per_span = std::max<int64_t>(1, int64_t(kWindowBytes / esize));
  std::vector<Span> spans;
  auto add = [&](int64_t first, int64_t n, T* dst) {
    for (int64_t i = 0; i < n; i += per_span)
      spans.push_back({base + uint64_t(first + i) * esize, std::min(per_span, n - i), dst + i});
  };
  if (cols == n_cols) {
    add(row_begin * n_cols, rows * cols, out);
  } else {
    spans.reserve(size_t(rows));
    for (int64_t r = 0; r < rows; ++r) add((row_begin + r) * n_cols + col_begin, cols, out + r * cols);
  }
  copy_spans<T>(t, spans);
}

template <class T>
void SafetensorsReader::read(const std::string& name, const std::vector<int64_t>& expect_shape,
                             T* out) const {
  const TensorInfo& t = info(name);
  TSP_REQUIRE(t.shape == expect_shape, "safetensors '{}': tensor '{}' has shape {}, expected {}", path_, name,
              shape_str(t.shape), shape_str(expect_shape));
  const int64_t n = t.numel();
  if (n == 0) return;
  const uint64_t esize = uint64_t(dtype_size(t.dtype));
  const int64_t per_span = std::max<int64_t>(1, int64_t(kWindowBytes / esize));
  std::vector<Span> spans;
  for (int64_t i = 0; i < n; i += per_span)
    spans.push_back({data_offset_ + t.begin + uint64_t(i) * esize, std::min(per_span, n - i), out + i});
  copy_spans<T>(t, spans);
}

template void SafetensorsReader::read_block<float>(const std::string&, const std::vector<int64_t>&, int64_t,
                                                   int64_t, int64_t, int64_t, float*) const;
template void SafetensorsReader::read_block<double>(const std::string&, const std::vector<int64_t>&, int64_t,
                                                    int64_t, int64_t, int64_t, double*) const;
template void SafetensorsReader::read<float>(const std::string&, const std::vector<int64_t>&, float*) const;
template void SafetensorsReader::read<double>(const std::string&, const std::vector<int64_t>&, double*) const;

// ---- writing ----------------------------------------------------------------------------------------------

SafetensorsWriter::SafetensorsWriter(std::string path) : path_(std::move(path)), tmp_path_(path_ + ".tmp") {
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  TSP_REQUIRE(fd_ >= 0, "cannot create '{}': {}", tmp_path_, std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (finished_) return;
  if (fd_ >= 0) ::close(fd_);
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
  TSP_CHECK(!index_.count(name), "safetensors writer '{}': tensor '{}' declared twice", path_, name);
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
  index_[name] = declared_.size();
  elements_declared_ += t.numel();
  declared_.push_back(std::move(t));
  written_.push_back(0);
}

void SafetensorsWriter::pwrite_all(const unsigned char* p, uint64_t n, uint64_t offset) {
  while (n > 0) {
    const ssize_t got = ::pwrite(fd_, p, n, off_t(offset));
    if (got < 0 && errno == EINTR) continue;
    TSP_CHECK(got > 0, "cannot write '{}': {}", tmp_path_, std::strerror(errno));
    p += got;
    n -= uint64_t(got);
    offset += uint64_t(got);
  }
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
  pwrite_all(reinterpret_cast<const unsigned char*>(&n), 8, 0);
  pwrite_all(reinterpret_cast<const unsigned char*>(header.data()), n, 8);
  data_offset_ = 8 + n;
  header_written_ = true;
}

TensorInfo& SafetensorsWriter::find(const std::string& name, int64_t add_elements) {
  TSP_CHECK(!finished_, "safetensors writer '{}': write of '{}' after finish()", path_, name);
  auto it = index_.find(name);
  TSP_CHECK(it != index_.end(), "safetensors writer '{}': tensor '{}' was not declared", path_, name);
  if (!header_written_) write_header();
  TensorInfo& t = declared_[it->second];
  int64_t& done = written_[it->second];
  TSP_CHECK(
      done + add_elements <= t.numel(),
      "safetensors writer '{}': tensor '{}' of shape {} has {} elements, but {} are already written and "
      "{} more were given",
      path_, name, shape_str(t.shape), t.numel(), done, add_elements);
  done += add_elements;
  elements_written_ += add_elements;
  return t;
}

template <class T>
void SafetensorsWriter::write(const std::string& name, const T* data, int64_t numel) {
  {
    auto it = index_.find(name);
    TSP_CHECK(it == index_.end() || numel == declared_[it->second].numel(),
              "safetensors writer '{}': tensor '{}' of shape {} has {} elements, got {}", path_, name,
              shape_str(declared_[it->second].shape), declared_[it->second].numel(), numel);
  }
  const TensorInfo& t = find(name, numel);
  const int64_t esize = dtype_size(t.dtype);
  const int64_t per_chunk = std::max<int64_t>(1, kChunkBytes / esize);
  buf_.resize(size_t(std::min(numel, per_chunk) * esize));
  for (int64_t i = 0; i < numel; i += per_chunk) {
    const int64_t n = std::min(per_chunk, numel - i);
    encode_elements(t.dtype, data + i, n, buf_.data());
    pwrite_all(buf_.data(), uint64_t(n * esize), data_offset_ + t.begin + uint64_t(i * esize));
  }
}

template <class T>
void SafetensorsWriter::write_block(const std::string& name, int64_t row_begin, int64_t rows,
                                    int64_t col_begin, int64_t cols, const T* data) {
  auto it = index_.find(name);
  TSP_CHECK(it != index_.end(), "safetensors writer '{}': tensor '{}' was not declared", path_, name);
  {
    const TensorInfo& t = declared_[it->second];
    const auto [n_rows, n_cols] = matrix_shape(path_, t);
    check_block(path_, t, n_rows, n_cols, row_begin, rows, col_begin, cols);
  }
  const TensorInfo& t = find(name, rows * cols);
  const int64_t n_cols = t.shape.back();
  const int64_t esize = dtype_size(t.dtype);
  const int64_t per_chunk = std::max<int64_t>(1, kChunkBytes / esize);
  buf_.resize(size_t(std::min(cols, per_chunk) * esize));
  // Row by row (a row of a block is contiguous in the file), each in bounded chunks.
  for (int64_t r = 0; r < rows; ++r) {
    const uint64_t row_off =
        data_offset_ + t.begin + uint64_t(((row_begin + r) * n_cols + col_begin) * esize);
    for (int64_t c = 0; c < cols; c += per_chunk) {
      const int64_t n = std::min(per_chunk, cols - c);
      encode_elements(t.dtype, data + r * cols + c, n, buf_.data());
      pwrite_all(buf_.data(), uint64_t(n * esize), row_off + uint64_t(c * esize));
    }
  }
}

template void SafetensorsWriter::write<float>(const std::string&, const float*, int64_t);
template void SafetensorsWriter::write<double>(const std::string&, const double*, int64_t);
template void SafetensorsWriter::write_block<float>(const std::string&, int64_t, int64_t, int64_t, int64_t,
                                                    const float*);
template void SafetensorsWriter::write_block<double>(const std::string&, int64_t, int64_t, int64_t, int64_t,
                                                     const double*);

void SafetensorsWriter::write_zeros(const std::string& name) {
  auto it = index_.find(name);
  TSP_CHECK(it != index_.end(), "safetensors writer '{}': tensor '{}' was not declared", path_, name);
  TSP_CHECK(written_[it->second] == 0,
            "safetensors writer '{}': write_zeros of '{}' after some of it was written", path_, name);
  find(name, declared_[it->second].numel());
}

bool SafetensorsWriter::complete() const {
  return elements_written_ == elements_declared_;
}

void SafetensorsWriter::finish() {
  TSP_CHECK(!finished_, "safetensors writer '{}': finish() called twice", path_);
  if (!header_written_) write_header();
  for (size_t i = 0; i < declared_.size(); ++i) {
    TSP_CHECK(written_[i] == declared_[i].numel(),
              "safetensors writer '{}': finish() before tensor '{}' was written ({} of {} elements)", path_,
              declared_[i].name, written_[i], declared_[i].numel());
  }
  // Tensors left as holes at the end still need the file to reach its full length.
  bool ok = ::ftruncate(fd_, off_t(data_offset_ + data_bytes())) == 0;
  ok = ok && ::fsync(fd_) == 0;
  const int err = errno;
  ok = ::close(fd_) == 0 && ok;
  fd_ = -1;
  TSP_CHECK(ok, "cannot write '{}': {}", tmp_path_, std::strerror(err));
  TSP_CHECK(std::rename(tmp_path_.c_str(), path_.c_str()) == 0, "cannot rename '{}' to '{}': {}", tmp_path_,
            path_, std::strerror(errno));
  finished_ = true;
  sync_directory(std::filesystem::path(path_).parent_path().string());
}

}  // namespace tsp

#include "data/token_dataset.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/check.h"
#include "core/json_integer.h"

static_assert(std::endian::native == std::endian::little, "the dataset files are little-endian");

namespace tsp {

namespace fs = std::filesystem;

namespace {

int width_for(int64_t vocab_size) {
  return vocab_size <= 65536 ? 2 : 4;
}

std::FILE* open_for_append(const fs::path& p, int64_t keep_bytes) {
  // Truncate to what the last completed record says, then append: an interrupted run leaves no half records.
  if (!fs::exists(p)) {
    std::FILE* f = std::fopen(p.c_str(), "wb");
    TSP_REQUIRE(f, "cannot create {}: {}", p.string(), std::strerror(errno));
    std::fclose(f);
  }
  TSP_REQUIRE(int64_t(fs::file_size(p)) >= keep_bytes,
              "{} holds {} bytes, fewer than the {} its progress record says", p.string(), fs::file_size(p),
              keep_bytes);
  fs::resize_file(p, uintmax_t(keep_bytes));
  std::FILE* f = std::fopen(p.c_str(), "ab");
  TSP_REQUIRE(f, "cannot open {}: {}", p.string(), std::strerror(errno));
  return f;
}

struct Mapped {
  const void* data = nullptr;
  size_t bytes = 0;
};

Mapped map_file(const fs::path& p) {
  const int fd = ::open(p.c_str(), O_RDONLY);
  TSP_REQUIRE(fd >= 0, "cannot open {}: {}", p.string(), std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  Mapped m;
  m.bytes = size_t(st.st_size);
  if (m.bytes > 0) {
    void* d = ::mmap(nullptr, m.bytes, PROT_READ, MAP_SHARED, fd, 0);
    ::close(fd);
    TSP_REQUIRE(d != MAP_FAILED, "cannot map {}: {}", p.string(), std::strerror(errno));
    m.data = d;
  } else {
    ::close(fd);
  }
  return m;
}

}  // namespace

TokenDatasetWriter::TokenDatasetWriter(const std::string& dir, int64_t vocab_size, int64_t tokens,
                                       int64_t documents)
    : dir_(dir),
      vocab_size_(vocab_size),
      width_(width_for(vocab_size)),
      tokens_(tokens),
      documents_(documents) {
  TSP_REQUIRE(vocab_size > 0 && vocab_size <= (int64_t(1) << 31),
              "dataset vocab_size {} must be in [1, 2^31]", vocab_size);
  bin_ = open_for_append(fs::path(dir) / "tokens.bin", tokens * width_);
  idx_ = open_for_append(fs::path(dir) / "documents.idx", documents * 8);
}

TokenDatasetWriter::~TokenDatasetWriter() {
  if (bin_) std::fclose(bin_);
  if (idx_) std::fclose(idx_);
}

void TokenDatasetWriter::add_document(const std::vector<int32_t>& tokens) {
  TSP_CHECK(bin_ && idx_, "add_document after finish");
  const uint64_t start = uint64_t(tokens_);
  TSP_CHECK(std::fwrite(&start, 8, 1, idx_) == 1, "short write to {}/documents.idx", dir_);
  buf_.resize(tokens.size() * size_t(width_));
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t t = tokens[i];
    TSP_CHECK(t >= 0 && t < vocab_size_, "token {} outside the vocabulary [0, {})", t, vocab_size_);
    if (width_ == 2) {
      const uint16_t v = uint16_t(t);
      std::memcpy(&buf_[i * 2], &v, 2);
    } else {
      const uint32_t v = uint32_t(t);
      std::memcpy(&buf_[i * 4], &v, 4);
    }
  }
  TSP_CHECK(std::fwrite(buf_.data(), 1, buf_.size(), bin_) == buf_.size(), "short write to {}/tokens.bin",
            dir_);
  tokens_ += int64_t(tokens.size());
  ++documents_;
}

void TokenDatasetWriter::flush() {
  TSP_CHECK(std::fflush(bin_) == 0 && std::fflush(idx_) == 0, "cannot write the dataset files in {}", dir_);
}

void TokenDatasetWriter::finish() {
  const uint64_t end = uint64_t(tokens_);
  TSP_CHECK(std::fwrite(&end, 8, 1, idx_) == 1, "short write to {}/documents.idx", dir_);
  const bool ok = std::fclose(bin_) == 0 && std::fclose(idx_) == 0;
  bin_ = idx_ = nullptr;
  TSP_CHECK(ok, "cannot close the dataset files in {}", dir_);
}

TokenDataset::TokenDataset(const std::string& dir) : dir_(dir) {
  const fs::path d(dir);
  const fs::path mpath = d / "manifest.json";
  std::ifstream f(mpath);
  TSP_REQUIRE(f.good(),
              "--dataset {}: no manifest.json there (write a dataset with `tsp tokenize --input FILES "
              "--output DIR`)",
              dir);
  try {
    manifest_ = nlohmann::json::parse(f);
    TSP_REQUIRE(manifest_.value("format", "") == kDatasetFormat,
                "{}: not a tsp tokenized dataset (format '{}')", mpath.string(),
                manifest_.value("format", ""));
    TSP_REQUIRE(json_integer_at<int64_t>(manifest_, "version", mpath.string(), 0) == kDatasetVersion,
                "{}: dataset version {} (this tsp reads {})", mpath.string(),
                manifest_.value("version", nlohmann::json(0)).dump(), kDatasetVersion);
    // Counts as JSON integers in range (core/json_integer.h: a fractional or huge number is an error).
    auto count = [&](const char* key, int64_t max) {
      const int64_t v = json_integer_at<int64_t>(manifest_, key, mpath.string());
      TSP_REQUIRE(v >= 0 && v <= max, "{}: \"{}\" must be an integer in 0..{}, got {}", mpath.string(), key,
                  max, v);
      return v;
    };
    documents_ = count("documents", std::numeric_limits<int64_t>::max());
    tokens_ = count("tokens", std::numeric_limits<int64_t>::max());
    vocab_size_ = count("vocab_size", std::numeric_limits<int32_t>::max());
    eos_id_ = int32_t(count("eos_id", std::numeric_limits<int32_t>::max()));
    const std::string dtype = manifest_.at("dtype").get<std::string>();
    TSP_REQUIRE(dtype == "uint16" || dtype == "uint32", "{}: dtype '{}' (allowed: uint16, uint32)",
                mpath.string(), dtype);
    width_ = dtype == "uint16" ? 2 : 4;
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(fmt::format("{} is not a valid dataset manifest: {}", mpath.string(), e.what()));
  }
  TSP_REQUIRE(documents_ > 0 && tokens_ > 0, "--dataset {} is empty ({} documents, {} tokens)", dir,
              documents_, tokens_);
  const Mapped t = map_file(d / "tokens.bin"), x = map_file(d / "documents.idx");
  data_ = static_cast<const unsigned char*>(t.data);
  data_bytes_ = t.bytes;
  index_ = static_cast<const uint64_t*>(x.data);
  index_bytes_ = x.bytes;
  TSP_REQUIRE(
      data_bytes_ == size_t(tokens_) * size_t(width_),
      "{}/tokens.bin holds {} bytes, but the manifest says {} tokens of {} bytes (truncated or not this "
      "dataset's file)",
      dir, data_bytes_, tokens_, width_);
  TSP_REQUIRE(index_bytes_ == size_t(documents_ + 1) * 8,
              "{}/documents.idx holds {} bytes, but {} documents need {}", dir, index_bytes_, documents_,
              (documents_ + 1) * 8);
  TSP_REQUIRE(index_[0] == 0 && index_[documents_] == uint64_t(tokens_),
              "{}/documents.idx does not span tokens.bin (first offset {}, last {}, tokens {})", dir,
              index_[0], index_[documents_], tokens_);
  for (int64_t k = 0; k < documents_; ++k)
    TSP_REQUIRE(index_[k] < index_[k + 1], "{}/documents.idx: document {} is empty or out of order", dir, k);
}

TokenDataset::~TokenDataset() {
  if (data_) ::munmap(const_cast<unsigned char*>(data_), data_bytes_);
  if (index_) ::munmap(const_cast<uint64_t*>(index_), index_bytes_);
}

void TokenDataset::read(int64_t begin, int64_t n, int32_t* out) const {
  TSP_CHECK(begin >= 0 && n >= 0 && begin + n <= tokens_, "dataset read [{}, {}) outside [0, {})", begin,
            begin + n, tokens_);
  if (width_ == 2) {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t v;
      std::memcpy(&v, data_ + size_t(begin + i) * 2, 2);
      out[i] = int32_t(v);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint32_t v;
      std::memcpy(&v, data_ + size_t(begin + i) * 4, 4);
      out[i] = int32_t(v);
    }
  }
}

std::string TokenDataset::tokenizer_dir() const {
  const fs::path t = fs::path(dir_) / "tokenizer";
  return fs::is_directory(t) ? t.string() : std::string();
}

}  // namespace tsp

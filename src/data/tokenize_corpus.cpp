#include "data/tokenize_corpus.h"

#include <fcntl.h>
#include <omp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "core/check.h"
#include "core/json_integer.h"
#include "data/token_dataset.h"

namespace tsp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A read-only view of a whole input file.
class InputFile {
 public:
  explicit InputFile(const std::string& path) {
    fd_ = ::open(path.c_str(), O_RDONLY);
    TSP_REQUIRE(fd_ >= 0, "cannot open --input {}: {}", path, std::strerror(errno));
    struct stat st {};
    ::fstat(fd_, &st);
    size_ = size_t(st.st_size);
    if (size_ > 0) {
      void* d = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd_, 0);
      TSP_REQUIRE(d != MAP_FAILED, "cannot map --input {}: {}", path, std::strerror(errno));
      data_ = static_cast<const char*>(d);
    }
  }
  ~InputFile() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
    if (fd_ >= 0) ::close(fd_);
  }
  std::string_view text() const { return {data_ ? data_ : "", size_}; }

 private:
  int fd_ = -1;
  const char* data_ = nullptr;
  size_t size_ = 0;
};

bool is_jsonl(const std::string& path) {
  const std::string ext = fs::path(path).extension().string();
  return ext == ".jsonl" || ext == ".ndjson";
}

// The documents of one input: views into the file, or for .jsonl the decoded text fields.
struct Documents {
  std::vector<std::string_view> views;
  std::vector<std::string> owned;
};

Documents split_documents(const std::string& path, std::string_view text, const TokenizeCorpusOptions& o) {
  Documents d;
  if (is_jsonl(path)) {
    size_t line_no = 0;
    for (size_t b = 0; b < text.size();) {
      size_t e = text.find('\n', b);
      if (e == std::string_view::npos) e = text.size();
      ++line_no;
      std::string_view line = text.substr(b, e - b);
      b = e + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
      json j;
      try {
        j = json::parse(line);
      } catch (const json::exception& ex) {
        throw UsageError(fmt::format("--input {} line {}: not JSON: {}", path, line_no, ex.what()));
      }
      TSP_REQUIRE(j.is_object() && j.contains(o.text_key) && j[o.text_key].is_string(),
                  "--input {} line {}: no string field \"{}\" (choose the field with --text-key)", path,
                  line_no, o.text_key);
      d.owned.push_back(j[o.text_key].get<std::string>());
    }
    for (const auto& s : d.owned) d.views.push_back(s);
  } else if (!o.separator.empty()) {
    for (size_t b = 0; b <= text.size();) {
      size_t e = text.find(o.separator, b);
      if (e == std::string_view::npos) e = text.size();
      d.views.push_back(text.substr(b, e - b));
      b = e + o.separator.size();
    }
  } else {
    d.views.push_back(text);
  }
  return d;
}

// What a partial dataset was started with: a resume is only allowed with exactly the same.
json signature(const Tokenizer& tok, const TokenizeCorpusOptions& o, int32_t eos) {
  json inputs = json::array();
  for (const auto& p : o.inputs) {
    const auto t = fs::last_write_time(p).time_since_epoch().count();
    inputs.push_back(
        {{"path", fs::absolute(p).string()}, {"bytes", fs::file_size(p)}, {"mtime", int64_t(t)}});
  }
  return {{"inputs", inputs},
          {"tokenizer", tok.describe()},
          {"eos_id", eos},
          {"text_key", o.text_key},
          {"separator", o.separator},
          {"add_special_tokens", o.add_special_tokens},
          {"split_special_tokens", o.split_special_tokens}};
}

void write_json_atomically(const fs::path& p, const json& j) {
  const fs::path tmp = p.string() + ".tmp";
  {
    std::ofstream f(tmp);
    f << j.dump(2) << "\n";
    TSP_CHECK(f.good(), "cannot write {}", tmp.string());
  }
  fs::rename(tmp, p);
}

class Progress {
 public:
  Progress(bool on, int64_t total) : on_(on && ::isatty(STDERR_FILENO)), total_(total) {}
  void update(int64_t done) {
    if (!on_) return;
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const double frac = total_ > 0 ? double(done) / double(total_) : 1.0;
    const int width = 30, fill = int(frac * width);
    std::string bar(size_t(fill), '=');
    bar.resize(size_t(width), ' ');
    std::fprintf(stderr, "\r\033[K[%s] %.1f/%.1f MB  %.1f MB/s", bar.c_str(), double(done) / 1e6,
                 double(total_) / 1e6, sec > 0 ? double(done) / 1e6 / sec : 0.0);
    std::fflush(stderr);
  }
  void clear() {
    if (on_) std::fputs("\r\033[K", stderr);
  }

 private:
  bool on_;
  int64_t total_;
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

}  // namespace

json tokenize_corpus(const Tokenizer& tok, const TokenizeCorpusOptions& o) {
  TSP_REQUIRE(!o.inputs.empty(), "tsp tokenize --output needs at least one --input file");
  TSP_REQUIRE(!o.output.empty(), "tsp tokenize --input needs --output DIR");
  for (const auto& p : o.inputs) TSP_REQUIRE(fs::is_regular_file(p), "--input {}: no such file", p);
  const fs::path out(o.output);
  TSP_REQUIRE(!fs::exists(out), "--output {} already exists (remove it or choose another directory)",
              o.output);
  int32_t eos = -1;
  if (!o.eos_token.empty()) {
    auto id = tok.token_id(o.eos_token);
    TSP_REQUIRE(id.has_value(), "--eos-token '{}' is not a token of the {}", o.eos_token, tok.describe());
    eos = *id;
  } else {
    auto id = tok.eos_id();
    TSP_REQUIRE(
        id.has_value(),
        "the {} names no end-of-sequence token (tokenizer_config.json eos_token); give --eos-token TEXT",
        tok.describe());
    eos = *id;
  }

  // Resume a partial dataset written with the same inputs and options, else start afresh.
  const fs::path partial = out.string() + ".partial";
  const fs::path record = partial / "progress.json";
  const json sig = signature(tok, o, eos);
  size_t first_input = 0;
  int64_t tokens = 0, documents = 0;
  json inputs_done = json::array();
  if (fs::exists(record)) {
    std::ifstream f(record);
    json r = json::parse(f, nullptr, false);
    if (!r.is_discarded() && r.value("signature", json()) == sig) {
      first_input = r.at("inputs_done").size();
      inputs_done = r.at("inputs_done");
      tokens = json_integer_at<int64_t>(r, "tokens", record.string());
      documents = json_integer_at<int64_t>(r, "documents", record.string());
      std::fprintf(stderr, "tsp tokenize: resuming %s after %zu of %zu input files\n", partial.c_str(),
                   first_input, o.inputs.size());
    } else {
      std::fprintf(stderr, "tsp tokenize: %s was started with other inputs or options; starting again\n",
                   partial.c_str());
      fs::remove_all(partial);
    }
  } else if (fs::exists(partial)) {
    fs::remove_all(partial);
  }
  fs::create_directories(partial);
  if (first_input == 0 && !tok.files().empty()) {
    fs::create_directories(partial / "tokenizer");
    copy_tokenizer_files(tok, (partial / "tokenizer").string());
  }

  int64_t total_bytes = 0, done_bytes = 0;
  for (size_t k = 0; k < o.inputs.size(); ++k) {
    total_bytes += int64_t(fs::file_size(o.inputs[k]));
    if (k < first_input) done_bytes += int64_t(fs::file_size(o.inputs[k]));
  }
  Progress progress(o.progress, total_bytes);
  TokenDatasetWriter writer(partial.string(), tok.vocab_size(), tokens, documents);
  const int64_t skipped_bytes = done_bytes;
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t k = first_input; k < o.inputs.size(); ++k) {
    const std::string& path = o.inputs[k];
    InputFile file(path);
    const Documents docs = split_documents(path, file.text(), o);
    const int64_t docs_before = writer.documents(), tokens_before = writer.tokens();
    // Batches of documents tokenized in parallel, written in order.
    const size_t batch_bytes = size_t(8) << 20;
    std::vector<std::vector<int32_t>> ids;
    for (size_t b = 0; b < docs.views.size();) {
      size_t e = b, bytes = 0;
      while (e < docs.views.size() && (e == b || bytes < batch_bytes)) bytes += docs.views[e++].size();
      ids.assign(e - b, {});
      std::string error;  // an exception must not leave an OpenMP region: the first is rethrown after it
#pragma omp parallel for schedule(dynamic, 1)
      for (size_t i = b; i < e; ++i) {
        if (docs.views[i].empty()) continue;
        try {
          ids[i - b] = tok.encode(docs.views[i], o.add_special_tokens, o.split_special_tokens);
          ids[i - b].push_back(eos);
        } catch (const std::exception& ex) {
#pragma omp critical
          if (error.empty()) error = ex.what();
        }
      }
      TSP_CHECK(error.empty(), "tokenizing {}: {}", path, error);
      for (const auto& d : ids)
        if (!d.empty()) writer.add_document(d);
      done_bytes += int64_t(bytes);
      progress.update(done_bytes);
      b = e;
    }
    writer.flush();
    inputs_done.push_back({{"path", path},
                           {"bytes", fs::file_size(path)},
                           {"documents", writer.documents() - docs_before},
                           {"tokens", writer.tokens() - tokens_before}});
    write_json_atomically(record, {{"signature", sig},
                                   {"inputs_done", inputs_done},
                                   {"tokens", writer.tokens()},
                                   {"documents", writer.documents()}});
  }
  progress.clear();
  TSP_REQUIRE(writer.documents() > 0, "the --input files hold no non-empty document");
  writer.finish();
  const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  json manifest = {{"format", kDatasetFormat},
                   {"version", kDatasetVersion},
                   {"dtype", writer.bytes_per_token() == 2 ? "uint16" : "uint32"},
                   {"vocab_size", tok.vocab_size()},
                   {"eos_id", eos},
                   {"documents", writer.documents()},
                   {"tokens", writer.tokens()},
                   {"bytes", total_bytes},
                   {"tokenizer", tok.describe()},
                   {"add_special_tokens", o.add_special_tokens},
                   {"split_special_tokens", o.split_special_tokens},
                   {"inputs", inputs_done},
                   {"files", {{"tokens", "tokens.bin"}, {"index", "documents.idx"}}}};
  write_json_atomically(partial / "manifest.json", manifest);
  fs::remove(record);
  fs::rename(partial, out);
  manifest["seconds"] = sec;
  manifest["bytes_tokenized"] = done_bytes - skipped_bytes;
  manifest["threads"] = omp_get_max_threads();
  return manifest;
}

}  // namespace tsp

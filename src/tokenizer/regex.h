// Regular expressions of tokenizer.json (pre-tokenizer splits, Replace patterns) through PCRE2 with UTF-8 and
// Unicode properties (\p{L}, \p{N}, Unicode \s and \w), JIT-compiled. HF tokenizers runs these patterns with
// Oniguruma; PCRE2 accepts the same syntax for every pattern the published tokenizers use.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tsp {

class Regex {
 public:
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Byte ranges [begin, end) of the successive non-overlapping, non-empty matches in `text` (valid UTF-8).
  // An empty match consumes no text: the search goes on one character further. Thread-safe.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  // `text` with every match (as find_all finds them) replaced by `content`.
  std::string replace_all(std::string_view text, std::string_view content) const;
  // Whether the pattern matches anywhere in `text`.
  bool search(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

  // A pattern that matches `literal` exactly.
  static std::string escape(std::string_view literal);

 private:
  std::string pattern_;
  void* code_ = nullptr;  // pcre2_code_8
};

}  // namespace tsp

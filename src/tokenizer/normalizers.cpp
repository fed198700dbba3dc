#include "tokenizer/normalizers.h"

#include <utf8proc.h>

#include <vector>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tsp {

namespace {

using tokjson::json;

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

// Unicode normalization forms through utf8proc (Debian's libutf8proc).
class UnicodeNormalizer : public Normalizer {
 public:
  explicit UnicodeNormalizer(utf8proc_option_t options) : options_(options) {}
  void normalize(std::string& text) const override {
    if (text.empty()) return;
    utf8proc_uint8_t* out = nullptr;
    const utf8proc_ssize_t n =
        utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), utf8proc_ssize_t(text.size()),
                     &out, utf8proc_option_t(options_ | UTF8PROC_STABLE));
    TSP_CHECK(n >= 0, "Unicode normalization failed: {}", utf8proc_errmsg(n));
    text.assign(reinterpret_cast<const char*>(out), size_t(n));
    std::free(out);
  }

 private:
  utf8proc_option_t options_;
};

class LowercaseNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) utf8::append(out, char32_t(utf8proc_tolower(utf8::next(text, i))));
    text.swap(out);
  }
};

// Strips Unicode White_Space on either side.
class StripNormalizer : public Normalizer {
 public:
  StripNormalizer(bool left, bool right) : left_(left), right_(right) {}
  void normalize(std::string& text) const override {
    size_t first = text.size(), last_end = 0;
    for (size_t i = 0; i < text.size();) {
      const size_t at = i;
      if (utf8::is_whitespace(utf8::next(text, i))) continue;
      if (first == text.size()) first = at;
      last_end = i;
    }
    const size_t b = left_ ? first : 0, e = right_ ? last_end : text.size();
    text = b < e ? text.substr(b, e - b) : std::string();
  }

 private:
  bool left_, right_;
};

// NFD, then drop nonspacing marks (Unicode category Mn), as HF's StripAccents.
class StripAccentsNormalizer : public Normalizer {
 public:
  void normalize(std::string& text) const override {
    UnicodeNormalizer(UTF8PROC_DECOMPOSE).normalize(text);
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
      const char32_t c = utf8::next(text, i);
      if (utf8proc_category(utf8proc_int32_t(c)) != UTF8PROC_CATEGORY_MN) utf8::append(out, c);
    }
    text.swap(out);
  }
};

class ReplaceNormalizer : public Normalizer {
 public:
  ReplaceNormalizer(const std::string& pattern, std::string content)
      : re_(pattern), content_(std::move(content)) {}
  void normalize(std::string& text) const override { text = re_.replace_all(text, content_); }

 private:
  Regex re_;
  std::string content_;
};

class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);  // HF prepends to non-empty strings only
  }

 private:
  std::string prefix_;
};

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, "normalizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (const auto& p : tokjson::get<json>(j, "normalizers"))
      if (auto n = make_normalizer(p)) parts.push_back(std::move(n));
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
  if (type == "NFKC")
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
  if (type == "NFKD")
    return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
  if (type == "Lowercase") return std::make_unique<LowercaseNormalizer>();
  if (type == "Strip")
    return std::make_unique<StripNormalizer>(tokjson::get_or<bool>(j, "strip_left", true),
                                             tokjson::get_or<bool>(j, "strip_right", true));
  if (type == "StripAccents") return std::make_unique<StripAccentsNormalizer>();
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(
        tokjson::pattern_of(tokjson::get<json>(j, "pattern"), "Replace"),
        tokjson::get<std::string>(j, "content"));
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(tokjson::get<std::string>(j, "prepend"));
  throw UsageError(fmt::format(
      "tokenizer.json: normalizer type '{}' is not supported (supported: Sequence, NFC, NFD, NFKC, NFKD, "
      "Lowercase, Strip, StripAccents, Replace, Prepend)",
      type));
}

}  // namespace tsp

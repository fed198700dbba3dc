#include "tokenizer/decoders.h"

#include <cctype>

#include "tokenizer/json_util.h"
#include "tokenizer/pre_tokenizers.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tsp {

namespace {

using tokjson::json;

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

// Byte-level stand-ins back to bytes; a token with a character outside the map keeps its own bytes. The
// bytes of all tokens form one string, invalid UTF-8 replaced by U+FFFD (String::from_utf8_lossy).
class ByteLevelDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string bytes;
    std::string tok_bytes;
    for (const auto& t : tokens) {
      tok_bytes.clear();
      bool mapped = true;
      for (size_t i = 0; i < t.size() && mapped;) {
        const int b = byte_level_byte(utf8::next(t, i));
        if (b < 0)
          mapped = false;
        else
          tok_bytes.push_back(char(b));
      }
      bytes += mapped ? tok_bytes : t;
    }
    tokens.assign(1, utf8::repair(bytes));
  }
};

class MetaspaceDecoder : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t k = 0; k < tokens.size(); ++k) {
      std::string out;
      const std::string& t = tokens[k];
      for (size_t i = 0; i < t.size();) {
        if (t.compare(i, rep_.size(), rep_) == 0) {
          // As HF: in the first token every replacement character is dropped (unless prepend_scheme never).
          if (!(k == 0 && strip_first_)) out += ' ';
          i += rep_.size();
        } else {
          out += t[i++];
        }
      }
      tokens[k].swap(out);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

class ReplaceDecoder : public Decoder {
 public:
  ReplaceDecoder(const std::string& pattern, std::string content)
      : re_(pattern), content_(std::move(content)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (auto& t : tokens) t = re_.replace_all(t, content_);
  }

 private:
  Regex re_;
  std::string content_;
};

// Runs of <0xXX> tokens back to the bytes they stand for: valid UTF-8 becomes one token, else one U+FFFD per
// byte.
class ByteFallbackDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string run;
    int run_len = 0;
    auto flush = [&] {
      if (run_len == 0) return;
      if (utf8::valid_prefix(run) == run.size())
        out.push_back(run);
      else
        for (int k = 0; k < run_len; ++k) out.push_back("\xEF\xBF\xBD");
      run.clear();
      run_len = 0;
    };
    for (auto& t : tokens) {
      int byte = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' &&
          std::isxdigit(static_cast<unsigned char>(t[3])) && std::isxdigit(static_cast<unsigned char>(t[4])))
        byte = std::stoi(t.substr(3, 2), nullptr, 16);
      if (byte >= 0) {
        run.push_back(char(byte));
        ++run_len;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, all);
  }
};

// Removes up to `start` leading and `stop` trailing copies of `content` from every token.
class StripDecoder : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const size_t n = content_.size();
    for (auto& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && b + n <= e && t.compare(b, n, content_) == 0; ++k) b += n;
      for (size_t k = 0; k < stop_ && e >= b + n && t.compare(e - n, n, content_) == 0; ++k) e -= n;
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

}  // namespace

std::unique_ptr<Decoder> make_decoder(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, "decoder");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<Decoder>> parts;
    for (const auto& p : tokjson::get<json>(j, "decoders"))
      if (auto d = make_decoder(p)) parts.push_back(std::move(d));
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    std::string scheme = tokjson::get_or<std::string>(j, "prepend_scheme", "");
    if (scheme.empty()) scheme = tokjson::get_or<bool>(j, "add_prefix_space", true) ? "always" : "never";
    return std::make_unique<MetaspaceDecoder>(tokjson::get_or<std::string>(j, "replacement", "\xE2\x96\x81"),
                                              scheme != "never");
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(tokjson::pattern_of(tokjson::get<json>(j, "pattern"), "Replace"),
                                            tokjson::get<std::string>(j, "content"));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    const std::string content = tokjson::get<std::string>(j, "content");
    size_t i = 0;
    TSP_REQUIRE(!content.empty() && (utf8::next(content, i), i == content.size()),
                "tokenizer.json: Strip decoder content must be one character, got '{}'", content);
    return std::make_unique<StripDecoder>(content, tokjson::get_or<size_t>(j, "start", 0),
                                          tokjson::get_or<size_t>(j, "stop", 0));
  }
  throw UsageError(
      fmt::format("tokenizer.json: decoder type '{}' is not supported (supported: Sequence, ByteLevel, "
                  "Metaspace, Replace, "
                  "ByteFallback, Fuse, Strip)",
                  type));
}

}  // namespace tsp

#include "tokenizer/pre_tokenizers.h"

#include <utf8proc.h>

#include <algorithm>
#include <array>
#include <unordered_map>

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tsp {

using tokjson::json;

SplitBehavior split_behavior_of(const std::string& name) {
  if (name == "Removed") return SplitBehavior::kRemoved;
  if (name == "Isolated") return SplitBehavior::kIsolated;
  if (name == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (name == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (name == "Contiguous") return SplitBehavior::kContiguous;
  throw UsageError(fmt::format(
      "tokenizer.json: split behavior '{}' is unknown (allowed: Removed, Isolated, MergedWithPrevious, "
      "MergedWithNext, Contiguous)",
      name));
}

std::vector<Segment> segments_of(size_t n, const std::vector<std::pair<size_t, size_t>>& matches) {
  std::vector<Segment> out;
  out.reserve(2 * matches.size() + 1);
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != n) out.push_back({prev, n, false});
  return out;
}

void split_segments(const PreToken& piece, const std::vector<Segment>& segs, SplitBehavior behavior,
                    std::vector<PreToken>& out) {
  // (range, removed) pairs, merged as HF's NormalizedString::split does.
  struct Range {
    size_t b, e;
    bool removed;
  };
  std::vector<Range> ranges;
  ranges.reserve(segs.size());
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const auto& s : segs) ranges.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::kRemoved:
      for (const auto& s : segs) ranges.push_back({s.begin, s.end, s.is_match});
      break;
    case SplitBehavior::kContiguous: {
      bool previous = false;
      for (const auto& s : segs) {
        if (s.is_match == previous && !ranges.empty())
          ranges.back().e = s.end;
        else
          ranges.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithPrevious: {
      bool previous = false;
      for (const auto& s : segs) {
        if (s.is_match && !previous && !ranges.empty())
          ranges.back().e = s.end;
        else
          ranges.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool previous = false;
      for (size_t k = segs.size(); k-- > 0;) {
        const auto& s = segs[k];
        if (s.is_match && !previous && !ranges.empty())
          ranges.back().b = s.begin;
        else
          ranges.push_back({s.begin, s.end, false});
        previous = s.is_match;
      }
      std::reverse(ranges.begin(), ranges.end());
      break;
    }
  }
  for (const auto& r : ranges) {
    if (r.removed || r.e == r.b) continue;
    out.push_back({piece.text.substr(r.b, r.e - r.b), piece.at_origin && r.b == 0});
  }
}

namespace {

// Applies `split_one` to every piece, keeping the order.
template <class F>
void split_each(std::vector<PreToken>& pieces, F&& split_one) {
  std::vector<PreToken> out;
  out.reserve(pieces.size() * 2);
  for (const auto& p : pieces) split_one(p, out);
  pieces.swap(out);
}

// Segments where a per-code-point predicate holds (each such code point is one match).
template <class Pred>
std::vector<Segment> char_segments(const std::string& text, Pred&& is_match) {
  std::vector<std::pair<size_t, size_t>> m;
  for (size_t i = 0; i < text.size();) {
    const size_t at = i;
    if (is_match(utf8::next(text, i))) m.emplace_back(at, i);
  }
  return segments_of(text.size(), m);
}

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    for (const auto& p : parts_) p->pre_tokenize(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

// GPT-2's byte-level pre-tokenizer: optionally a leading space and the GPT-2 split regex, then every byte
// mapped to its printable stand-in, so that the BPE model sees no raw bytes.
class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space),
        regex_(use_regex
                   ? std::make_unique<Regex>(
                         R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)")
                   : nullptr) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& p, std::vector<PreToken>& out) {
      PreToken q{std::string(), p.at_origin};
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) q.text.push_back(' ');
      q.text += p.text;
      if (regex_)
        split_segments(q, segments_of(q.text.size(), regex_->find_all(q.text)), SplitBehavior::kIsolated,
                       out);
      else if (!q.text.empty())
        out.push_back(std::move(q));
    });
    for (auto& p : pieces) {
      std::string mapped;
      mapped.reserve(p.text.size() * 2);
      for (unsigned char b : p.text) mapped += byte_level_char(b);
      p.text.swap(mapped);
    }
  }

 private:
  bool add_prefix_space_;
  std::unique_ptr<Regex> regex_;
};

class SplitPreTokenizer : public PreTokenizer {
 public:
  SplitPreTokenizer(const std::string& pattern, SplitBehavior behavior, bool invert)
      : regex_(pattern), behavior_(behavior), invert_(invert) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& p, std::vector<PreToken>& out) {
      std::vector<Segment> segs = segments_of(p.text.size(), regex_.find_all(p.text));
      if (invert_)
        for (auto& s : segs) s.is_match = !s.is_match;
      split_segments(p, segs, behavior_, out);
    });
  }

 private:
  Regex regex_;
  SplitBehavior behavior_;
  bool invert_;
};

// SentencePiece-style: spaces become the replacement character (U+2581), optionally prepended, and the text
// is split before each replacement character.
class MetaspacePreTokenizer : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePreTokenizer(std::string replacement, Prepend prepend, bool split)
      : rep_(std::move(replacement)), prepend_(prepend), split_(split) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& p, std::vector<PreToken>& out) {
      PreToken q{std::string(), p.at_origin};
      q.text.reserve(p.text.size() + rep_.size());
      for (char c : p.text) {
        if (c == ' ')
          q.text += rep_;
        else
          q.text += c;
      }
      const bool starts = q.text.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && q.at_origin)))
        q.text.insert(0, rep_);
      if (!split_) {
        if (!q.text.empty()) out.push_back(std::move(q));
        return;
      }
      std::vector<std::pair<size_t, size_t>> m;
      for (size_t at = q.text.find(rep_); at != std::string::npos; at = q.text.find(rep_, at + rep_.size()))
        m.emplace_back(at, at + rep_.size());
      split_segments(q, segments_of(q.text.size(), m), SplitBehavior::kMergedWithNext, out);
    });
  }

 private:
  std::string rep_;
  Prepend prepend_;
  bool split_;
};

// Splits where a per-code-point predicate holds (WhitespaceSplit, Digits, Punctuation).
template <class Pred>
class CharPreTokenizer : public PreTokenizer {
 public:
  CharPreTokenizer(Pred pred, SplitBehavior behavior) : pred_(pred), behavior_(behavior) {}
  void pre_tokenize(std::vector<PreToken>& pieces) const override {
    split_each(pieces, [&](const PreToken& p, std::vector<PreToken>& out) {
      split_segments(p, char_segments(p.text, pred_), behavior_, out);
    });
  }

 private:
  Pred pred_;
  SplitBehavior behavior_;
};

template <class Pred>
std::unique_ptr<PreTokenizer> char_pre_tokenizer(Pred pred, SplitBehavior behavior) {
  return std::make_unique<CharPreTokenizer<Pred>>(pred, behavior);
}

bool is_punctuation(char32_t c) {
  // HF's is_punctuation: ASCII punctuation or a Unicode punctuation category (P*).
  if (c < 0x80)
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  switch (utf8proc_category(utf8proc_int32_t(c))) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
      return true;
    default:
      return false;
  }
}

bool is_numeric(char32_t c) {
  // Rust's char::is_numeric: the Nd, Nl and No categories.
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = utf8proc_category(utf8proc_int32_t(c));
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

}  // namespace

const std::string& byte_level_char(unsigned char b) {
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int n = 0;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF);
      utf8::append(t[size_t(c)], printable ? char32_t(c) : char32_t(256 + n++));
    }
    return t;
  }();
  return table[b];
}

int byte_level_byte(char32_t cp) {
  static const std::unordered_map<char32_t, int> inverse = [] {
    std::unordered_map<char32_t, int> m;
    for (int b = 0; b < 256; ++b) {
      size_t i = 0;
      m[utf8::next(byte_level_char(static_cast<unsigned char>(b)), i)] = b;
    }
    return m;
  }();
  const auto it = inverse.find(cp);
  return it == inverse.end() ? -1 : it->second;
}

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& j) {
  if (j.is_null()) return nullptr;
  const std::string type = tokjson::type_of(j, "pre_tokenizer");
  if (type == "Sequence") {
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (const auto& p : tokjson::get<json>(j, "pretokenizers"))
      if (auto t = make_pre_tokenizer(p)) parts.push_back(std::move(t));
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(tokjson::get_or<bool>(j, "add_prefix_space", true),
                                                   tokjson::get_or<bool>(j, "use_regex", true));
  if (type == "Split")
    return std::make_unique<SplitPreTokenizer>(tokjson::pattern_of(tokjson::get<json>(j, "pattern"), "Split"),
                                               split_behavior_of(tokjson::get<std::string>(j, "behavior")),
                                               tokjson::get_or<bool>(j, "invert", false));
  if (type == "Metaspace") {
    std::string rep = tokjson::get_or<std::string>(j, "replacement", "\xE2\x96\x81");
    size_t i = 0;
    TSP_REQUIRE(!rep.empty() && (utf8::next(rep, i), i == rep.size()),
                "tokenizer.json: Metaspace replacement must be one character, got '{}'", rep);
    MetaspacePreTokenizer::Prepend prepend = MetaspacePreTokenizer::Prepend::kAlways;
    if (j.contains("prepend_scheme") && !j["prepend_scheme"].is_null()) {
      const std::string s = tokjson::get<std::string>(j, "prepend_scheme");
      if (s == "always")
        prepend = MetaspacePreTokenizer::Prepend::kAlways;
      else if (s == "first")
        prepend = MetaspacePreTokenizer::Prepend::kFirst;
      else if (s == "never")
        prepend = MetaspacePreTokenizer::Prepend::kNever;
      else
        throw UsageError(fmt::format(
            "tokenizer.json: Metaspace prepend_scheme '{}' is unknown (allowed: always, first, never)", s));
    } else if (!tokjson::get_or<bool>(j, "add_prefix_space", true)) {
      prepend = MetaspacePreTokenizer::Prepend::kNever;  // the format before prepend_scheme existed
    }
    return std::make_unique<MetaspacePreTokenizer>(rep, prepend, tokjson::get_or<bool>(j, "split", true));
  }
  if (type == "Whitespace")
    return std::make_unique<SplitPreTokenizer>(R"(\w+|[^\w\s]+)", SplitBehavior::kRemoved, /*invert=*/true);
  if (type == "WhitespaceSplit")
    return char_pre_tokenizer([](char32_t c) { return utf8::is_whitespace(c); }, SplitBehavior::kRemoved);
  if (type == "Digits")
    return char_pre_tokenizer(is_numeric, tokjson::get_or<bool>(j, "individual_digits", false)
                                              ? SplitBehavior::kIsolated
                                              : SplitBehavior::kContiguous);
  if (type == "Punctuation")
    return char_pre_tokenizer(is_punctuation,
                              split_behavior_of(tokjson::get_or<std::string>(j, "behavior", "Isolated")));
  throw UsageError(fmt::format(
      "tokenizer.json: pre_tokenizer type '{}' is not supported (supported: Sequence, ByteLevel, Split, "
      "Metaspace, Whitespace, WhitespaceSplit, Digits, Punctuation)",
      type));
}

}  // namespace tsp

// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): split normalized text into the words the model
// tokenizes one by one, chosen by "type". Supported: Sequence, ByteLevel, Split, Metaspace, Whitespace,
// WhitespaceSplit, Digits, Punctuation.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tsp {

// A piece of text on its way to the model. at_origin: it starts at offset 0 of the original input (what
// Metaspace's prepend_scheme "first" asks).
struct PreToken {
  std::string text;
  bool at_origin = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each piece by its splits; empty splits are dropped.
  virtual void pre_tokenize(std::vector<PreToken>& pieces) const = 0;
};

// nullptr for a JSON null (no pre-tokenizer).
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& j);

// How the matches of a pattern split text (HF's SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };
SplitBehavior split_behavior_of(const std::string& name);

// Byte ranges of `text` between and including the matches, flagged as match or not, covering the whole text.
struct Segment {
  size_t begin, end;
  bool is_match;
};
// Splits `piece` at `segments` as `behavior` says, appending the resulting non-empty pieces to `out`.
void split_segments(const PreToken& piece, const std::vector<Segment>& segments, SplitBehavior behavior,
                    std::vector<PreToken>& out);
// The segments of `text` given the matches of a pattern (match ranges in order, non-overlapping).
std::vector<Segment> segments_of(size_t text_size, const std::vector<std::pair<size_t, size_t>>& matches);

// The GPT-2 byte-to-unicode map of byte-level BPE: byte b -> a printable code point (UTF-8 encoded).
const std::string& byte_level_char(unsigned char b);
// The inverse: the byte of a byte-level code point, or -1 for a code point outside the map.
int byte_level_byte(char32_t cp);

}  // namespace tsp

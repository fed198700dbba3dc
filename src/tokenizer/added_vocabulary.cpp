#include "tokenizer/added_vocabulary.h"

#include "tokenizer/json_util.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace tsp {

using tokjson::json;

void AddedVocabulary::Trie::insert(std::string_view s, int token) {
  if (s.empty()) return;
  int node = 0;
  for (unsigned char c : s) {
    auto it = nodes[size_t(node)].next.find(c);
    if (it == nodes[size_t(node)].next.end()) {
      nodes.emplace_back();
      it = nodes[size_t(node)].next.emplace(c, int(nodes.size()) - 1).first;
    }
    node = it->second;
  }
  if (nodes[size_t(node)].token < 0) nodes[size_t(node)].token = token;
  first_byte[static_cast<unsigned char>(s[0])] = true;
}

std::pair<int, size_t> AddedVocabulary::Trie::longest_at(std::string_view text, size_t at) const {
  int node = 0, best = -1;
  size_t best_end = at;
  for (size_t i = at; i < text.size(); ++i) {
    const auto& nx = nodes[size_t(node)].next;
    auto it = nx.find(static_cast<unsigned char>(text[i]));
    if (it == nx.end()) break;
    node = it->second;
    if (nodes[size_t(node)].token >= 0) {
      best = nodes[size_t(node)].token;
      best_end = i + 1;
    }
  }
  return {best, best_end};
}

AddedVocabulary::AddedVocabulary(const json& added, const Normalizer* normalizer) {
  if (added.is_null()) return;
  TSP_REQUIRE(added.is_array(), "tokenizer.json: \"added_tokens\" must be an array");
  for (const auto& a : added) {
    AddedToken t;
    t.content = tokjson::get<std::string>(a, "content");
    t.id = tokjson::get<int32_t>(a, "id");
    TSP_REQUIRE(t.id >= 0, "tokenizer.json: added token '{}' has negative id {}", t.content, t.id);
    t.single_word = tokjson::get_or<bool>(a, "single_word", false);
    t.lstrip = tokjson::get_or<bool>(a, "lstrip", false);
    t.rstrip = tokjson::get_or<bool>(a, "rstrip", false);
    t.special = tokjson::get_or<bool>(a, "special", false);
    t.normalized = tokjson::get_or<bool>(a, "normalized", !t.special);
    std::string norm = t.content;
    if (t.normalized && normalizer) normalizer->normalize(norm);
    const int index = int(tokens_.size());
    if (t.normalized)
      normalized_.insert(norm, index);
    else
      raw_.insert(t.content, index);
    by_id_[t.id] = size_t(index);
    max_id_ = std::max<int64_t>(max_id_, t.id);
    normalized_content_.push_back(t.normalized ? norm : t.content);
    tokens_.push_back(std::move(t));
  }
}

namespace {

// \w as Rust's regex crate has it (Unicode), for single_word; \s* runs for lstrip/rstrip.
const Regex& word_at_end() {
  static const Regex re(R"(\w\z)");
  return re;
}
const Regex& word_at_start() {
  static const Regex re(R"(\A\w)");
  return re;
}

size_t trailing_space_start(std::string_view s) {
  size_t run = s.size();
  bool in_run = false;
  for (size_t i = 0; i < s.size();) {
    const size_t at = i;
    if (utf8::is_whitespace(utf8::next(s, i))) {
      if (!in_run) run = at;
      in_run = true;
    } else {
      in_run = false;
    }
  }
  return in_run ? run : s.size();
}

size_t leading_space_end(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    size_t j = i;
    if (!utf8::is_whitespace(utf8::next(s, j))) break;
    i = j;
  }
  return i;
}

}  // namespace

void AddedVocabulary::split_on(const Trie& trie, const Section& in, bool split_special_tokens,
                               std::vector<Section>& out) const {
  const std::string& s = in.text.text;
  size_t start_offset = 0;
  auto emit_text = [&](size_t b, size_t e) {
    if (e > b) out.push_back({{s.substr(b, e - b), in.text.at_origin && b == 0}, -1});
  };
  if (trie.nodes.size() > 1) {
    size_t i = 0;
    while (i < s.size()) {
      if (!trie.first_byte[static_cast<unsigned char>(s[i])]) {
        ++i;
        continue;
      }
      auto [index, stop] = trie.longest_at(s, i);
      if (index < 0) {
        ++i;
        continue;
      }
      const AddedToken& t = tokens_[size_t(index)];
      size_t start = i;
      i = stop;  // matches never overlap: the search goes on after this one, even when it is discarded
      if (split_special_tokens && t.special) continue;
      if (t.single_word) {
        const bool start_space = start == 0 || !word_at_end().search(std::string_view(s).substr(0, start));
        const bool stop_space = stop == s.size() || !word_at_start().search(std::string_view(s).substr(stop));
        if (!start_space || !stop_space) continue;
      }
      if (t.lstrip)
        start = std::max(trailing_space_start(std::string_view(s).substr(0, start)), start_offset);
      if (t.rstrip) {
        stop += leading_space_end(std::string_view(s).substr(stop));
        i = stop;
      }
      emit_text(start_offset, start);
      out.push_back({{s.substr(start, stop - start), false}, t.id});
      start_offset = stop;
    }
  }
  emit_text(start_offset, s.size());
}

std::vector<Section> AddedVocabulary::extract_and_normalize(std::string_view text,
                                                            const Normalizer* normalizer,
                                                            bool split_special_tokens) const {
  std::vector<Section> raw;
  split_on(raw_, Section{{std::string(text), true}, -1}, split_special_tokens, raw);
  std::vector<Section> out;
  for (auto& sec : raw) {
    if (sec.token >= 0) {
      out.push_back(std::move(sec));
      continue;
    }
    if (normalizer) normalizer->normalize(sec.text.text);
    split_on(normalized_, sec, split_special_tokens, out);
  }
  return out;
}

const std::string* AddedVocabulary::decoded_content(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &normalized_content_[it->second];
}

bool AddedVocabulary::is_special(int32_t id) const {
  auto it = by_id_.find(id);
  return it != by_id_.end() && tokens_[it->second].special;
}

std::optional<int32_t> AddedVocabulary::id_of(const std::string& content) const {
  for (const auto& t : tokens_)
    if (t.content == content) return t.id;
  return std::nullopt;
}

}  // namespace tsp

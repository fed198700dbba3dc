#include "tokenizer/bpe.h"

#include <atomic>
#include <queue>

#include "core/check.h"
#include "tokenizer/json_util.h"
#include "tokenizer/utf8.h"

namespace tsp {

using tokjson::json;

namespace {

std::atomic<uint64_t> next_cache_id{1};

// Per-thread memo of whole words (HF keeps one too): real text repeats words, and a cached word skips the
// merge loop. Keyed by model so that several tokenizers in one process never share entries.
constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kMaxCachedWordBytes = 256;

struct WordCache {
  uint64_t model = 0;
  std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> words;
};

WordCache& thread_cache(uint64_t model) {
  thread_local WordCache cache;
  if (cache.model != model) {
    cache.words.clear();
    cache.model = model;
  }
  return cache;
}

}  // namespace

BpeModel::BpeModel(const json& m) : cache_id_(next_cache_id++) {
  TSP_REQUIRE(tokjson::get_or<std::string>(m, "type", "BPE") == "BPE",
              "tokenizer.json: model type '{}' is not supported (supported: BPE)",
              tokjson::type_of(m, "model"));
  TSP_REQUIRE(m.contains("vocab") && m["vocab"].is_object(),
              "tokenizer.json: the BPE model has no \"vocab\" object");
  TSP_REQUIRE(
      m.value("dropout", json()).is_null() || (m["dropout"].is_number() && m["dropout"].get<double>() == 0.0),
      "tokenizer.json: BPE dropout {} is not supported for inference tokenization (use null)",
      m["dropout"].dump());
  for (const auto& [tok, id] : m["vocab"].items()) {
    TSP_REQUIRE(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < (int64_t(1) << 31),
                "tokenizer.json: vocab entry '{}' has id {}, which is not a non-negative 32-bit integer", tok,
                id.dump());
    const int32_t i = id.get<int32_t>();
    vocab_[tok] = i;
    if (size_t(i) >= id_to_token_.size()) id_to_token_.resize(size_t(i) + 1);
    id_to_token_[size_t(i)] = tok;
  }
  unk_token_ = tokjson::get_or<std::string>(m, "unk_token", "");
  continuing_subword_prefix_ = tokjson::get_or<std::string>(m, "continuing_subword_prefix", "");
  end_of_word_suffix_ = tokjson::get_or<std::string>(m, "end_of_word_suffix", "");
  fuse_unk_ = tokjson::get_or<bool>(m, "fuse_unk", false);
  byte_fallback_ = tokjson::get_or<bool>(m, "byte_fallback", false);
  ignore_merges_ = tokjson::get_or<bool>(m, "ignore_merges", false);
  if (!unk_token_.empty()) {
    auto it = vocab_.find(unk_token_);
    TSP_REQUIRE(it != vocab_.end(), "tokenizer.json: the BPE unk_token '{}' is not in the vocabulary",
                unk_token_);
    unk_id_ = it->second;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = it == vocab_.end() ? -1 : it->second;
  }

  // Merges: "a b" strings (the older format) or ["a", "b"] pairs. The merged token drops b's
  // continuing_subword_prefix; a later duplicate of a pair replaces the earlier one, as in HF.
  const json merges = m.value("merges", json::array());
  TSP_REQUIRE(merges.is_array(), "tokenizer.json: BPE \"merges\" must be an array");
  merges_.reserve(merges.size());
  auto id_of = [&](const std::string& t) {
    auto it = vocab_.find(t);
    TSP_REQUIRE(it != vocab_.end(), "tokenizer.json: merge token '{}' is not in the vocabulary", t);
    return it->second;
  };
  int32_t rank = 0;
  for (const auto& e : merges) {
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      TSP_REQUIRE(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
                  "tokenizer.json: merge {} must be two tokens separated by one space", e.dump());
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      TSP_REQUIRE(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(),
                  "tokenizer.json: merge {} must be a pair of strings", e.dump());
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    }
    const size_t prefix = std::min(continuing_subword_prefix_.size(), b.size());
    // In HF's order: a, b, then the merged token must be in the vocabulary.
    const int32_t a_id = id_of(a), b_id = id_of(b), merged = id_of(a + b.substr(prefix));
    merges_[pair_key(a_id, b_id)] = {rank++, merged};
  }
}

const std::string& BpeModel::id_to_token(int32_t id) const {
  static const std::string none;
  return id >= 0 && size_t(id) < id_to_token_.size() ? id_to_token_[size_t(id)] : none;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    auto it = vocab_.find(word);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (word.size() > kMaxCachedWordBytes) {
    merge_word(word, out);
    return;
  }
  WordCache& cache = thread_cache(cache_id_);
  auto hit = cache.words.find(word);
  if (hit != cache.words.end()) {
    out.insert(out.end(), hit->second.begin(), hit->second.end());
    return;
  }
  const size_t first = out.size();
  merge_word(word, out);
  if (cache.words.size() >= kCacheCapacity) cache.words.clear();
  cache.words.emplace(std::string(word), std::vector<int32_t>(out.begin() + int64_t(first), out.end()));
}

void BpeModel::merge_word(std::string_view w, std::vector<int32_t>& out) const {
  // Initial symbols, one per character (HF's Word): prefix on all but the first, suffix on the last.
  std::vector<int32_t> ids;
  ids.reserve(w.size());
  int32_t pending_unk = -1;  // an unknown run not yet emitted (fused when fuse_unk)
  std::string s;
  for (size_t i = 0; i < w.size();) {
    const size_t at = i;
    i += utf8::char_len(static_cast<unsigned char>(w[i]));
    const bool is_first = at == 0, is_last = i >= w.size();
    std::string_view piece = w.substr(at, i - at);
    if (!is_first && !continuing_subword_prefix_.empty()) {
      s = continuing_subword_prefix_;
      s += piece;
      if (is_last) s += end_of_word_suffix_;
      piece = s;
    } else if (is_last && !end_of_word_suffix_.empty()) {
      s = std::string(piece) + end_of_word_suffix_;
      piece = s;
    }
    auto it = vocab_.find(piece);
    if (it != vocab_.end()) {
      if (pending_unk >= 0) {
        ids.push_back(pending_unk);
        pending_unk = -1;
      }
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      bool all = true;
      for (unsigned char b : piece) all = all && byte_ids_[b] >= 0;
      if (all) {
        // As in HF, a pending unknown token is emitted after these bytes (only matters for vocabularies that
        // lack some byte tokens).
        for (unsigned char b : piece) ids.push_back(byte_ids_[b]);
        continue;
      }
    }
    if (unk_id_ >= 0) {
      if (pending_unk >= 0 && !fuse_unk_) ids.push_back(pending_unk);
      pending_unk = unk_id_;
    }
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);

  // Merge loop over a doubly linked list of symbols with a priority queue of candidate merges, as HF's
  // Word::merge_all: stale entries (either side already merged away) are skipped when popped.
  const int n = int(ids.size());
  if (n > 1 && !merges_.empty()) {
    std::vector<int> prev(static_cast<size_t>(n)), next(static_cast<size_t>(n));
    std::vector<char> alive(static_cast<size_t>(n), 1);
    for (int k = 0; k < n; ++k) {
      prev[size_t(k)] = k - 1;
      next[size_t(k)] = k + 1 < n ? k + 1 : -1;
    }
    struct Cand {
      int32_t rank;
      int pos;
      int32_t new_id;
      bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> queue;
    auto push = [&](int pos) {
      const int nx = next[size_t(pos)];
      if (nx < 0) return;
      auto it = merges_.find(pair_key(ids[size_t(pos)], ids[size_t(nx)]));
      if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
    };
    for (int k = 0; k + 1 < n; ++k) push(k);
    while (!queue.empty()) {
      const Cand top = queue.top();
      queue.pop();
      const size_t p = size_t(top.pos);
      if (!alive[p] || next[p] < 0) continue;
      const size_t r = size_t(next[p]);
      auto it = merges_.find(pair_key(ids[p], ids[r]));
      if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // stale
      ids[p] = top.new_id;
      alive[r] = 0;
      next[p] = next[r];
      if (next[r] >= 0) prev[size_t(next[r])] = int(p);
      if (prev[p] >= 0) push(prev[p]);
      push(int(p));
    }
    for (int k = 0; k < n; ++k)
      if (alive[size_t(k)]) out.push_back(ids[size_t(k)]);
    return;
  }
  out.insert(out.end(), ids.begin(), ids.end());
}

}  // namespace tsp

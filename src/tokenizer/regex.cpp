#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include <pcre2.h>

#include <cctype>

#include "core/check.h"
#include "tokenizer/utf8.h"

namespace tsp {

namespace {

pcre2_code* code_of(void* p) {
  return static_cast<pcre2_code*>(p);
}

// One match-data block per thread and pattern size: allocating it per call would cost more than the match.
struct MatchData {
  pcre2_match_data* data = nullptr;
  ~MatchData() {
    if (data) pcre2_match_data_free(data);
  }
};

pcre2_match_data* thread_match_data() {
  thread_local MatchData md;
  // Every pattern is matched only for its whole-match range, so one ovector pair suffices.
  if (!md.data) md.data = pcre2_match_data_create(1, nullptr);
  return md.data;
}

}  // namespace

Regex::Regex(const std::string& pattern) : pattern_(pattern) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \w, \d and POSIX classes use Unicode properties, as Oniguruma's do for UTF-8 strings.
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof(msg));
    throw UsageError(fmt::format("tokenizer regex '{}' does not compile (PCRE2, at offset {}): {}", pattern,
                                 size_t(offset), reinterpret_cast<const char*>(msg)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter where JIT is unavailable
  code_ = code;
}

Regex::~Regex() {
  if (code_) pcre2_code_free(code_of(code_));
}

std::vector<std::pair<size_t, size_t>> Regex::find_all(std::string_view text) const {
  std::vector<std::pair<size_t, size_t>> out;
  pcre2_match_data* md = thread_match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;
  while (start <= text.size()) {
    const int rc = pcre2_match(code_of(code_), subject, text.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    TSP_CHECK(rc >= 0, "PCRE2 match of '{}' failed with code {}", pattern_, rc);
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    const size_t b = ov[0], e = ov[1];
    if (e > b) {
      out.emplace_back(b, e);
      start = e;
    } else {
      if (b >= text.size()) break;
      start = b + utf8::char_len(static_cast<unsigned char>(text[b]));
    }
  }
  return out;
}

std::string Regex::replace_all(std::string_view text, std::string_view content) const {
  std::string out;
  size_t prev = 0;
  for (auto [b, e] : find_all(text)) {
    out.append(text.substr(prev, b - prev));
    out.append(content);
    prev = e;
  }
  out.append(text.substr(prev));
  return out;
}

bool Regex::search(std::string_view text) const {
  pcre2_match_data* md = thread_match_data();
  const int rc = pcre2_match(code_of(code_), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
                             PCRE2_NO_UTF_CHECK, md, nullptr);
  TSP_CHECK(rc >= 0 || rc == PCRE2_ERROR_NOMATCH, "PCRE2 match of '{}' failed with code {}", pattern_, rc);
  return rc >= 0;
}

std::string Regex::escape(std::string_view literal) {
  // PCRE2 treats a backslash before any ASCII non-alphanumeric character as that character itself.
  std::string out;
  for (char c : literal) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x80 && !std::isalnum(u)) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace tsp

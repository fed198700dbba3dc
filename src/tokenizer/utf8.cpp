#include "tokenizer/utf8.h"

namespace tsp::utf8 {

char32_t next(std::string_view s, size_t& i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  const size_t n = char_len(c);
  char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

namespace {

// The sequence at s[i]: its length and whether it is valid. An invalid one is reported with the length of its
// "maximal subpart" (the longest prefix that could start a valid sequence, at least one byte), which is what
// one U+FFFD replaces under the Unicode standard's recommendation (Rust's from_utf8_lossy, WHATWG's decoder).
// Overlong forms, surrogates and code points above U+10FFFF are invalid (the standard's table 3-7).
size_t scan_at(std::string_view s, size_t i, bool& ok) {
  const auto c = static_cast<unsigned char>(s[i]);
  ok = true;
  if (c < 0x80) return 1;
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // range of the first continuation byte
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    ok = false;
    return 1;
  }
  for (size_t k = 1; k < n; ++k) {
    if (i + k >= s.size()) {
      ok = false;
      return k;
    }
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80) || b > (k == 1 ? hi : 0xBF)) {
      ok = false;
      return k;
    }
  }
  return n;
}

}  // namespace

size_t valid_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs dominate real text: skip them eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      __builtin_memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ull) break;
      i += 8;
    }
    if (i >= s.size()) break;
    bool ok;
    const size_t n = scan_at(s, i, ok);
    if (!ok) return i;
    i += n;
  }
  return s.size();
}

std::string repair(std::string_view s, int64_t* replaced) {
  if (replaced) *replaced = 0;
  size_t i = valid_prefix(s);
  if (i == s.size()) return std::string(s);
  std::string out(s.substr(0, i));
  while (i < s.size()) {
    bool ok;
    const size_t n = scan_at(s, i, ok);
    if (ok) {
      out.append(s.substr(i, n));
    } else {
      out += "\xEF\xBF\xBD";
      if (replaced) ++*replaced;
    }
    i += n;
  }
  return out;
}

bool is_whitespace(char32_t c) {
  // Unicode White_Space (what Rust's char::is_whitespace tests).
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

}  // namespace tsp::utf8

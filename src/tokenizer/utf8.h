// UTF-8 helpers for the tokenizer pipeline: code point iteration, encoding, and repair of invalid input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tsp::utf8 {

// Length in bytes of the (valid) UTF-8 sequence that starts with byte c.
inline size_t char_len(unsigned char c) {
  return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

// The code point at s[i] (s valid UTF-8); advances i past it.
char32_t next(std::string_view s, size_t& i);
void append(std::string& out, char32_t cp);

// Number of bytes at the start of s that form valid UTF-8 (s.size() when all of it is valid).
size_t valid_prefix(std::string_view s);
// s with every invalid byte sequence replaced by U+FFFD (maximal subparts, as Rust's from_utf8_lossy and
// Python's errors="replace"); `replaced` counts
// them. Returns s unchanged (and replaced = 0) when it is valid.
std::string repair(std::string_view s, int64_t* replaced = nullptr);

// Unicode properties the pipeline needs (White_Space as Rust's char::is_whitespace; alphanumeric).
bool is_whitespace(char32_t cp);

}  // namespace tsp::utf8

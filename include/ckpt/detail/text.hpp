#pragma once

// Text helpers every part of ckpt shares: UTF-8 validation, quoting names and
// hostile text in error messages, and glob patterns. Standard library only.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ckpt::detail {

// Printable ASCII but '"' and '\\': a byte that stands for itself in a JSON
// string, needing no escape and no UTF-8 check. By table: the header of a
// file of 100,000 tensors has every byte of its strings tested, on save and
// on open.
struct PlainJsonBytes {
  bool is[256] = {};
  constexpr PlainJsonBytes() {
    for (int c = 0x20; c < 0x7f; ++c) is[c] = c != '"' && c != '\\';
  }
};

inline bool plain_json_byte(char c) noexcept {
  static constexpr PlainJsonBytes table;
  return table.is[static_cast<unsigned char>(c)];
}

inline bool plain_json_text(std::string_view text) noexcept {
  for (char c : text) {
    if (!plain_json_byte(c)) return false;
  }
  return true;
}

inline bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length;
    std::uint32_t code;
    if (lead < 0x80) {
      ++i;
      continue;
    }
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      code = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      code = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      code = lead & 0x07;
    } else
      return false;
    if (text.size() - i < length) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    const bool overlong = (length == 3 && code < 0x800) || (length == 4 && code < 0x10000);
    if (overlong || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    i += length;
  }
  return true;
}

// Error messages quote hostile text; long text is cut so messages stay readable.
inline std::string excerpt(std::string_view text, std::size_t limit = 120) {
  return text.size() <= limit ? std::string(text) : std::string(text.substr(0, limit)) + "...";
}

// A name as error messages show it: a NUL would end the message early.
inline std::string printable_name(std::string_view name) {
  std::string text;
  for (char c : name) text += c == '\0' ? std::string("\\0") : std::string(1, c);
  return text;
}

// Shell-style match where '*' matches any run of characters (including '/')
// and '?' any one character. Linear backtracking to the last '*', so hostile
// patterns cannot make it exponential.
inline bool glob_match(const std::string& pattern, const std::string& text) {
  std::size_t p = 0, t = 0;
  std::size_t star = std::string::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace ckpt::detail

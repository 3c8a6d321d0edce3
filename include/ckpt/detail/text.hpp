#pragma once

// Text helpers every part of ckpt shares: joining messages, UTF-8
// validation, quoting names and hostile text in error messages, and glob
// patterns. Standard library only.

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>

namespace ckpt::detail {

// One piece of a message joined by join(): text, or an integer in decimal as
// std::to_string writes it. Messages are built by one out-of-line join
// instead of chains of std::string operator+, whose inlined appends,
// temporaries and unwinding paths g++ otherwise compiles again at every
// message (issue 11). Character types are refused: operator+ appends a char
// as a character, std::to_string as a number, and a silent choice between the
// two would change messages. Not copyable: a number's text views the piece.
class TextPiece {
 public:
  TextPiece(std::string_view text) noexcept : text_(text) {}
  TextPiece(const char* text) noexcept : text_(text) {}
  TextPiece(const std::string& text) noexcept : text_(text) {}
  template <class Integer,
            std::enable_if_t<std::is_integral_v<Integer> && !std::is_same_v<Integer, bool> &&
                                 !std::is_same_v<Integer, char> && !std::is_same_v<Integer, signed char> &&
                                 !std::is_same_v<Integer, unsigned char>,
                             int> = 0>
  TextPiece(Integer number) noexcept {
    // The magnitude in unsigned arithmetic: negating the most negative value
    // of a signed type overflows.
    bool negative = false;
    if constexpr (std::is_signed_v<Integer>) negative = number < 0;
    const auto magnitude = static_cast<std::uint64_t>(number);
    set_number(negative, negative ? 0 - magnitude : magnitude);
  }
  TextPiece(const TextPiece&) = delete;
  TextPiece& operator=(const TextPiece&) = delete;

  std::string_view text() const noexcept { return text_; }

 private:
  // Not a template, so one copy serves every integer type.
  void set_number(bool negative, std::uint64_t magnitude) noexcept {
    char* start = digits_ + sizeof digits_;
    do {
      *--start = static_cast<char>('0' + magnitude % 10);
      magnitude /= 10;
    } while (magnitude != 0);
    if (negative) *--start = '-';
    text_ = std::string_view(start, static_cast<std::size_t>(digits_ + sizeof digits_ - start));
  }

  std::string_view text_;
  char digits_[21];  // "-9223372036854775808" or "18446744073709551615"
};

// The pieces in order, in one allocation.
inline std::string join(std::initializer_list<TextPiece> pieces) {
  std::size_t size = 0;
  for (const TextPiece& piece : pieces) size += piece.text().size();
  std::string text;
  text.reserve(size);
  for (const TextPiece& piece : pieces) text += piece.text();
  return text;
}

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

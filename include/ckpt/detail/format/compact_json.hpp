#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/detail/text.hpp"

// A reader of JSON text in the narrow form ckpt writes its headers in: no
// whitespace, strings of printable ASCII, unsigned integers. It builds
// nothing: the caller pulls each token where the layout expects it, straight
// into its own records. Every method returns false at anything outside that
// form, valid JSON or not; the caller then reads the text again with the
// general, validating parser (header_parser.hpp), which accepts or names the
// problem. So this reader only has to be right about what it accepts. A
// template only so that programs that open no file do not compile it (see
// "Compile time" in docs/architecture.md).
namespace ckpt::detail {

template <class = void>
class CompactJson {
 public:
  explicit CompactJson(std::string_view text) : text_(text) {}

  bool at_end() const noexcept { return at_ == text_.size(); }
  std::size_t position() const noexcept { return at_; }

  // Consumes `c` when it comes next.
  bool eat(char c) noexcept {
    if (at_ == text_.size() || text_[at_] != c) return false;
    ++at_;
    return true;
  }

  // Consumes the rest when it is spaces only (a header's padding).
  bool spaces_to_end() noexcept {
    while (at_ < text_.size() && text_[at_] == ' ') ++at_;
    return at_end();
  }

  // A string without escapes; `value` views the text.
  // Scanned through a local pointer: a store to at_ per byte cost twice the scan.
  bool string(std::string_view& value) noexcept {
    if (!eat('"')) return false;
    const char* const begin = text_.data() + at_;
    const char* const end = text_.data() + text_.size();
    const char* in = begin;
    while (in != end && plain_json_byte(*in)) ++in;
    if (in == end || *in != '"') return false;
    value = std::string_view(begin, static_cast<std::size_t>(in - begin));
    at_ = static_cast<std::size_t>(in + 1 - text_.data());
    return true;
  }

  // A string whose only escapes are \" and \\ (how JSON text held in a
  // string comes out), unescaped into `value`. The value of ckpt.tensors runs
  // to megabytes with an escape every few bytes: it is checked and copied in
  // one pass through local pointers (a store through `value`'s own members
  // would make the compiler reload them after every byte), each run of plain
  // bytes by a loop that checks for room once per run, into a string that
  // doubles when full. A call per run between escapes cost several times
  // this copy.
  bool escaped_string(std::string& value) {
    if (!eat('"')) return false;
    constexpr std::size_t first_bytes = 4096;
    value.resize(std::max<std::size_t>(1, std::min(text_.size() - at_, first_bytes)));
    char* out = value.data();
    char* out_end = out + value.size();
    const char* in = text_.data() + at_;
    const char* const end = text_.data() + text_.size();
    for (;;) {
      // Plain bytes, as many as the input and the room left allow.
      const char* const stop = in + std::min(end - in, out_end - out);
      while (in != stop && plain_json_byte(*in)) *out++ = *in++;
      if (in == end) return false;
      if (in != stop) {
        if (*in == '"') {
          value.resize(static_cast<std::size_t>(out - value.data()));
          at_ = static_cast<std::size_t>(in + 1 - text_.data());
          return true;
        }
        if (*in != '\\' || in + 1 == end || (in[1] != '"' && in[1] != '\\')) return false;
        if (out != out_end) {
          *out++ = in[1];
          in += 2;
          continue;
        }
      }
      const std::size_t size = value.size();
      value.resize(2 * size);
      out = value.data() + size;
      out_end = value.data() + value.size();
    }
  }

  // `"key":` with a key without escapes.
  bool key(std::string_view& value) noexcept { return string(value) && eat(':'); }

  // A non-negative integer that fits 64 bits, written without leading zeros.
  // Overflow is possible only at the 20th digit: the digits before it are
  // taken without a check (a division per digit cost more than the rest of
  // reading a header's 400,000 numbers of 100,000 tensors).
  bool number(std::uint64_t& value) noexcept {
    constexpr std::size_t unchecked_digits = 19;  // 10^19 - 1 < 2^64
    const std::size_t begin = at_;
    value = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(text_[at_] - '0');
      if (at_ - begin >= unchecked_digits && value > (~std::uint64_t(0) - digit) / 10) return false;
      value = value * 10 + digit;
      ++at_;
    }
    if (at_ == begin || (text_[begin] == '0' && at_ - begin > 1)) return false;
    // A fraction or exponent makes it a float, which is no integer to ckpt.
    return at_ == text_.size() || (text_[at_] != '.' && text_[at_] != 'e' && text_[at_] != 'E');
  }

  // An array of at most `max_elements` integers.
  bool numbers(std::vector<std::uint64_t>& values, std::size_t max_elements) {
    return array(values, max_elements, [this](std::uint64_t& value) { return number(value); });
  }

  // An array of at most `max_elements` strings without escapes.
  bool strings(std::vector<std::string_view>& values, std::size_t max_elements) {
    return array(values, max_elements, [this](std::string_view& value) { return string(value); });
  }

 private:
  template <class Value, class ReadElement>
  bool array(std::vector<Value>& values, std::size_t max_elements, ReadElement read_element) {
    values.clear();
    if (!eat('[')) return false;
    if (eat(']')) return true;
    do {
      if (values.size() == max_elements) return false;
      values.emplace_back();
      if (!read_element(values.back())) return false;
    } while (eat(','));
    return eat(']');
  }

  std::string_view text_;
  std::size_t at_ = 0;
};

}  // namespace ckpt::detail

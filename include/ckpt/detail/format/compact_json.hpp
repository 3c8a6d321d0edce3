#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

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
  bool string(std::string_view& value) noexcept {
    if (!eat('"')) return false;
    const std::size_t begin = at_;
    for (; at_ < text_.size(); ++at_) {
      const char c = text_[at_];
      if (c == '"') {
        value = text_.substr(begin, at_++ - begin);
        return true;
      }
      if (!plain(c)) return false;
    }
    return false;
  }

  // A string whose only escapes are \" and \\ (how JSON text held in a
  // string comes out), unescaped into `value`.
  // Measured first, then copied into one allocation: the value of
  // ckpt.tensors runs to megabytes.
  bool escaped_string(std::string& value) {
    if (!eat('"')) return false;
    std::size_t end = at_, escapes = 0;
    for (; end < text_.size() && text_[end] != '"'; ++end) {
      if (text_[end] == '\\') {
        if (end + 1 == text_.size() || (text_[end + 1] != '"' && text_[end + 1] != '\\')) return false;
        ++escapes;
        ++end;  // the escaped character
      } else if (!plain(text_[end])) {
        return false;
      }
    }
    if (end == text_.size()) return false;
    value.resize(end - at_ - escapes);
    std::size_t out = 0;
    for (std::size_t run = at_; run < end;) {  // copies the runs between backslashes
      const std::size_t backslash = std::min(text_.find('\\', run), end);
      text_.copy(value.data() + out, backslash - run, run);
      out += backslash - run;
      if (backslash == end) break;
      value[out++] = text_[backslash + 1];
      run = backslash + 2;
    }
    at_ = end + 1;
    return true;
  }

  // `"key":` with a key without escapes.
  bool key(std::string_view& value) noexcept { return string(value) && eat(':'); }

  // A non-negative integer that fits 64 bits, written without leading zeros.
  bool number(std::uint64_t& value) noexcept {
    const std::size_t begin = at_;
    value = 0;
    while (at_ < text_.size() && text_[at_] >= '0' && text_[at_] <= '9') {
      const auto digit = static_cast<std::uint64_t>(text_[at_] - '0');
      if (value > (~std::uint64_t(0) - digit) / 10) return false;
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
  // Printable ASCII but '"' and '\\': a string byte that needs no escape and
  // no UTF-8 check.
  static bool plain(char c) noexcept { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; }

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

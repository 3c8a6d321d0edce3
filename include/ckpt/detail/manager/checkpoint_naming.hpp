#pragma once

// File names of a manager's checkpoints, from a template such as
// "ckpt-{step:08}.safetensors" or "run-e{epoch:03}-{step:08}-{val_loss:.4f}.safetensors".
// Fields: {step} (required), {epoch}, and any metric name; ":0N" / ":N" pads
// integers with zeros to N digits, ":.Nf" prints a metric with N decimals.
// A file belongs to the manager only if its name parses *and* formatting the
// parsed step and epoch gives back the same text, so "ckpt-1.safetensors" is
// not taken for "ckpt-{step:08}.safetensors".

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

struct ParsedCheckpointName {
  std::uint64_t step = 0;
  std::optional<std::uint64_t> epoch;
  std::map<std::string, double> metrics;
};

// A template only so that programs without a CheckpointManager do not compile
// it (see "Compile time" in docs/architecture.md).
template <class = void>
class CheckpointNaming {
 public:
  explicit CheckpointNaming(std::string pattern) : pattern_(std::move(pattern)) {
    if (pattern_.empty() || pattern_[0] == '.' || pattern_.find('/') != std::string::npos) {
      fail("a file name that does not start with '.' and has no '/'");
    }
    std::size_t position = 0;
    while (position < pattern_.size()) {
      const std::size_t open = pattern_.find('{', position);
      const std::size_t close_before = pattern_.find('}', position);
      if (close_before < open) fail("'{' before every '}'");
      const std::string literal = pattern_.substr(position, open - position);
      pieces_.push_back(Piece{literal, "", 0, -1});
      if (open == std::string::npos) break;
      const std::size_t close = pattern_.find('}', open);
      if (close == std::string::npos) fail("a '}' closing every '{'");
      pieces_.push_back(parse_field(pattern_.substr(open + 1, close - open - 1)));
      position = close + 1;
    }
    bool has_step = false;
    for (const Piece& piece : pieces_) has_step = has_step || piece.field == "step";
    if (!has_step) fail("a {step} field");
  }

  const std::string& pattern() const noexcept { return pattern_; }

  // Throws ArgumentError when the template needs an epoch or metric not given.
  std::string file_name(const ParsedCheckpointName& values) const {
    std::string name;
    for (const Piece& piece : pieces_) {
      name += piece.literal;
      if (piece.field.empty()) continue;
      if (piece.field == "step") {
        name += format_integer(values.step, piece.width);
      } else if (piece.field == "epoch") {
        if (!values.epoch) missing("an epoch");
        name += format_integer(*values.epoch, piece.width);
      } else {
        const auto metric = values.metrics.find(piece.field);
        if (metric == values.metrics.end()) missing(join({"the metric '", piece.field, "'"}));
        name += format_metric(metric->second, piece.precision);
      }
    }
    return name;
  }

  std::optional<ParsedCheckpointName> parse(const std::string& file_name) const {
    std::vector<std::string_view> texts;
    if (!match(file_name, 0, texts)) return std::nullopt;
    ParsedCheckpointName parsed;
    auto field_text = texts.begin();
    for (const Piece& piece : pieces_) {
      if (piece.field.empty()) continue;
      const std::string text(*field_text++);
      if (piece.is_integer()) {
        if (text.size() > 19) return std::nullopt;  // would overflow 64 bits
        const std::uint64_t value = std::strtoull(text.c_str(), nullptr, 10);
        if (format_integer(value, piece.width) != text) return std::nullopt;
        (piece.field == "step" ? parsed.step : parsed.epoch.emplace()) = value;
      } else {
        parsed.metrics[piece.field] = std::strtod(text.c_str(), nullptr);
      }
    }
    return parsed;
  }

 private:
  struct Piece {
    std::string literal;  // text before the field
    std::string field;    // empty for the trailing literal
    int width;
    int precision;  // -1: shortest form (%g)
    bool is_integer() const { return field == "step" || field == "epoch"; }
  };

  Piece parse_field(const std::string& text) const {
    const std::size_t colon = text.find(':');
    Piece piece{"", text.substr(0, colon), 0, -1};
    if (piece.field.empty() || !(std::isalpha(static_cast<unsigned char>(piece.field[0])) || piece.field[0] == '_')) {
      fail(join({"field names made of letters, digits and '_' (found '{", text, "}')"}));
    }
    for (char c : piece.field) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') fail("field names made of letters, digits and '_'");
    }
    if (colon == std::string::npos) return piece;
    const std::string spec = text.substr(colon + 1);
    // ":N", ":NN" or ":0N", ":0NN"; ".Nf" or ".NNf".
    const bool width = spec.size() <= 3 && digits_only(spec) && (spec.size() < 3 || spec[0] == '0');
    const bool precision = spec.size() >= 3 && spec.size() <= 4 && spec.front() == '.' && spec.back() == 'f' &&
                           digits_only(std::string_view(spec).substr(1, spec.size() - 2));
    if (piece.is_integer() && width) {
      piece.width = std::stoi(spec);
    } else if (!piece.is_integer() && precision) {
      piece.precision = std::stoi(spec.substr(1));
    } else {
      fail(join({"':08' after step/epoch or ':.4f' after a metric (found '{", text, "}')"}));
    }
    return piece;
  }

  static std::string format_integer(std::uint64_t value, int width) {
    char text[32];
    std::snprintf(text, sizeof text, "%0*llu", width, static_cast<unsigned long long>(value));
    return text;
  }

  static std::string format_metric(double value, int precision) {
    char text[64];
    if (precision < 0) {
      std::snprintf(text, sizeof text, "%g", value);
    } else {
      std::snprintf(text, sizeof text, "%.*f", precision, value);
    }
    return text;
  }

  static bool digits_only(std::string_view text) {
    return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
  }

  // A metric as format_metric writes it: -?(inf|nan|D+(.D*)?(e[-+]?D+)?).
  static bool is_metric_text(std::string_view text) {
    if (!text.empty() && text.front() == '-') text.remove_prefix(1);
    if (text == "inf" || text == "nan") return true;
    const auto skip_digits = [&text] {
      const std::size_t count = std::min(text.find_first_not_of("0123456789"), text.size());
      text.remove_prefix(count);
      return count;
    };
    if (skip_digits() == 0) return false;
    if (!text.empty() && text.front() == '.') {
      text.remove_prefix(1);
      skip_digits();
    }
    if (!text.empty() && text.front() == 'e') {
      text.remove_prefix(1);
      if (!text.empty() && (text.front() == '-' || text.front() == '+')) text.remove_prefix(1);
      if (skip_digits() == 0) return false;
    }
    return text.empty();
  }

  // Whether `name` matches pieces_[piece] and the pieces after it, with the
  // text of each field appended to `texts`. A field takes the longest text
  // that lets the rest match (as a regular expression's greedy group would),
  // which only matters for templates whose fields touch.
  bool match(std::string_view name, std::size_t piece, std::vector<std::string_view>& texts) const {
    if (piece == pieces_.size()) return name.empty();
    const Piece& current = pieces_[piece];
    if (name.substr(0, current.literal.size()) != current.literal) return false;
    name.remove_prefix(current.literal.size());
    if (current.field.empty()) return match(name, piece + 1, texts);
    for (std::size_t length = name.size(); length > 0; --length) {
      const std::string_view text = name.substr(0, length);
      if (!(current.is_integer() ? digits_only(text) : is_metric_text(text))) continue;
      texts.push_back(text);
      if (match(name.substr(length), piece + 1, texts)) return true;
      texts.pop_back();
    }
    return false;
  }

  [[noreturn]] void fail(const std::string& expected) const {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        join({"checkpoint name template '", pattern_, "': expected ", expected}));
  }

  [[noreturn]] void missing(const std::string& what) const {
    throw ArgumentError(
        ErrorId::argument_invalid, "", "",
        join({"checkpoint name template '", pattern_, "' needs ", what, " for every save; none was given"}));
  }

  std::string pattern_;
  std::vector<Piece> pieces_;
};

}  // namespace ckpt::detail

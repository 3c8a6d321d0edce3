#pragma once

// File names of a manager's checkpoints, from a template such as
// "ckpt-{step:08}.safetensors" or "run-e{epoch:03}-{step:08}-{val_loss:.4f}.safetensors".
// Fields: {step} (required), {epoch}, and any metric name; ":0N" / ":N" pads
// integers with zeros to N digits, ":.Nf" prints a metric with N decimals.
// A file belongs to the manager only if its name parses *and* formatting the
// parsed step and epoch gives back the same text, so "ckpt-1.safetensors" is
// not taken for "ckpt-{step:08}.safetensors".

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/error.hpp"

namespace ckpt::detail {

struct ParsedCheckpointName {
  std::uint64_t step = 0;
  std::optional<std::uint64_t> epoch;
  std::map<std::string, double> metrics;
};

class CheckpointNaming {
 public:
  explicit CheckpointNaming(std::string pattern) : pattern_(std::move(pattern)) {
    if (pattern_.empty() || pattern_[0] == '.' || pattern_.find('/') != std::string::npos) {
      fail("a file name that does not start with '.' and has no '/'");
    }
    std::string expression;
    std::size_t position = 0;
    while (position < pattern_.size()) {
      const std::size_t open = pattern_.find('{', position);
      const std::size_t close_before = pattern_.find('}', position);
      if (close_before < open) fail("'{' before every '}'");
      const std::string literal = pattern_.substr(position, open - position);
      pieces_.push_back(Piece{literal, "", 0, -1});
      expression += escape(literal);
      if (open == std::string::npos) break;
      const std::size_t close = pattern_.find('}', open);
      if (close == std::string::npos) fail("a '}' closing every '{'");
      pieces_.push_back(parse_field(pattern_.substr(open + 1, close - open - 1)));
      expression += pieces_.back().is_integer() ? "([0-9]+)" : "(-?(?:inf|nan|[0-9]+(?:\\.[0-9]*)?(?:e[-+]?[0-9]+)?))";
      position = close + 1;
    }
    bool has_step = false;
    for (const Piece& piece : pieces_) has_step = has_step || piece.field == "step";
    if (!has_step) fail("a {step} field");
    matcher_ = std::regex(expression, std::regex::ECMAScript | std::regex::optimize);
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
        if (metric == values.metrics.end()) missing("the metric '" + piece.field + "'");
        name += format_metric(metric->second, piece.precision);
      }
    }
    return name;
  }

  std::optional<ParsedCheckpointName> parse(const std::string& file_name) const {
    std::smatch match;
    if (!std::regex_match(file_name, match, matcher_)) return std::nullopt;
    ParsedCheckpointName parsed;
    std::size_t group = 1;
    for (const Piece& piece : pieces_) {
      if (piece.field.empty()) continue;
      const std::string text = match[group++].str();
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
    int precision;        // -1: shortest form (%g)
    bool is_integer() const { return field == "step" || field == "epoch"; }
  };

  Piece parse_field(const std::string& text) const {
    const std::size_t colon = text.find(':');
    Piece piece{"", text.substr(0, colon), 0, -1};
    if (piece.field.empty() || !(std::isalpha(static_cast<unsigned char>(piece.field[0])) || piece.field[0] == '_')) {
      fail("field names made of letters, digits and '_' (found '{" + text + "}')");
    }
    for (char c : piece.field) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') fail("field names made of letters, digits and '_'");
    }
    if (colon == std::string::npos) return piece;
    const std::string spec = text.substr(colon + 1);
    if (piece.is_integer() && std::regex_match(spec, std::regex("0?[0-9]{1,2}"))) {
      piece.width = std::stoi(spec);
    } else if (!piece.is_integer() && std::regex_match(spec, std::regex("\\.[0-9]{1,2}f"))) {
      piece.precision = std::stoi(spec.substr(1));
    } else {
      fail("':08' after step/epoch or ':.4f' after a metric (found '{" + text + "}')");
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

  static std::string escape(const std::string& literal) {
    std::string escaped;
    for (char c : literal) {
      if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) escaped += '\\';
      escaped += c;
    }
    return escaped;
  }

  [[noreturn]] void fail(const std::string& expected) const {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "checkpoint name template '" + pattern_ + "': expected " + expected);
  }

  [[noreturn]] void missing(const std::string& what) const {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "checkpoint name template '" + pattern_ + "' needs " + what + " for every save; none was given");
  }

  std::string pattern_;
  std::vector<Piece> pieces_;
  std::regex matcher_;
};

}  // namespace ckpt::detail

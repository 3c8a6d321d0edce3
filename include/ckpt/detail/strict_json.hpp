#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/tensor.hpp"

// Reading JSON that may be hostile: bounded nesting and array lengths, no
// duplicate keys, and accessors that never assume a member exists.
namespace ckpt::detail {

inline bool is_valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  while (i < text.size()) {
    const auto lead = static_cast<unsigned char>(text[i]);
    std::size_t length;
    std::uint32_t code;
    if (lead < 0x80) { ++i; continue; }
    if (lead >= 0xC2 && lead <= 0xDF) { length = 2; code = lead & 0x1F; }
    else if (lead >= 0xE0 && lead <= 0xEF) { length = 3; code = lead & 0x0F; }
    else if (lead >= 0xF0 && lead <= 0xF4) { length = 4; code = lead & 0x07; }
    else return false;
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

// Parses JSON, refusing nesting deeper than `max_depth`, arrays longer than
// `max_elements` (so that no single allocation outgrows the file) and
// duplicate keys (nlohmann would silently keep one of them). On failure
// returns nullopt and says why in `problem`.
inline std::optional<nlohmann::json> parse_strict_json(std::string_view text, std::size_t max_depth,
                                                       std::size_t max_elements, std::string& problem) {
  struct Rejected { std::string reason; };
  struct Container {
    bool is_array;
    std::size_t elements;
    std::set<std::string> keys;
  };
  std::vector<Container> open;
  const auto count_element = [&] {
    if (!open.empty() && open.back().is_array && ++open.back().elements > max_elements) {
      throw Rejected{"expected arrays of at most " + std::to_string(max_elements) + " elements, found a longer one"};
    }
  };
  const auto guard = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using Event = nlohmann::json::parse_event_t;
    if (event == Event::object_start || event == Event::array_start) {
      count_element();
      if (open.size() >= max_depth) {
        throw Rejected{"expected JSON nested at most " + std::to_string(max_depth) + " levels deep, found deeper"};
      }
      open.push_back(Container{event == Event::array_start, 0, {}});
    } else if (event == Event::object_end || event == Event::array_end) {
      open.pop_back();
    } else if (event == Event::value) {
      count_element();
    } else if (event == Event::key && !open.back().keys.insert(parsed.get<std::string>()).second) {
      throw Rejected{"expected unique keys, found '" + excerpt(parsed.get<std::string>()) + "' twice"};
    }
    return true;
  };
  // nlohmann takes a NUL byte for the end of the input and would ignore
  // whatever follows it; JSON text never holds one unescaped.
  const std::size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    problem = "expected JSON text without NUL bytes, found one at byte " + std::to_string(nul);
    return std::nullopt;
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end(), guard, true, false);
  } catch (const Rejected& rejected) {
    problem = rejected.reason;
  } catch (const nlohmann::json::exception& error) {
    problem = "invalid JSON: " + std::string(error.what());
  }
  return std::nullopt;
}

// object[key], or null when absent (nlohmann's const operator[] requires presence).
inline const nlohmann::json& member(const nlohmann::json& object, const char* key) {
  static const nlohmann::json missing;
  const auto found = object.find(key);
  return found == object.end() ? missing : *found;
}

inline std::optional<std::uint64_t> as_u64(const nlohmann::json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  return value.get<std::uint64_t>();
}

inline std::optional<Shape> as_shape(const nlohmann::json& value) {
  if (!value.is_array()) return std::nullopt;
  Shape shape;
  for (const nlohmann::json& extent : value) {
    const auto parsed = as_u64(extent);
    if (!parsed) return std::nullopt;
    shape.push_back(*parsed);
  }
  return shape;
}

}  // namespace ckpt::detail

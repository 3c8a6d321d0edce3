#pragma once

// Values a state keeps in the checkpoint's JSON metadata rather than as
// tensors: arithmetic scalars, enums, std::string, nlohmann::json and random
// engines (their textual state), each converted so it reads back exactly.

#include <cmath>
#include <cstdint>
#include <limits>
#include <locale>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include "ckpt/detail/text.hpp"

namespace ckpt::detail {

// The standard engines (and any engine that streams its state with << and >>,
// as the standard requires of them).
template <class T, class = void>
struct is_random_engine : std::false_type {};
template <class T>
struct is_random_engine<
    T, std::void_t<typename T::result_type, decltype(T::min()), decltype(T::max()), decltype(std::declval<T&>()()),
                   decltype(std::declval<std::ostream&>() << std::declval<const T&>()),
                   decltype(std::declval<std::istream&>() >> std::declval<T&>())>>
    : std::bool_constant<std::is_unsigned_v<typename T::result_type>> {};

template <class T>
inline constexpr bool is_metadata_value_v =
    std::is_arithmetic_v<T> || std::is_enum_v<T> || std::is_same_v<T, std::string> ||
    std::is_same_v<T, nlohmann::json> || is_random_engine<T>::value;

// What a metadata value of type T looks like, for reports.
template <class T>
std::string metadata_kind() {
  if constexpr (std::is_same_v<T, bool>)
    return "boolean";
  else if constexpr (std::is_floating_point_v<T>)
    return "number";
  else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>)
    return "integer";
  else if constexpr (std::is_same_v<T, std::string>)
    return "string";
  else if constexpr (std::is_same_v<T, nlohmann::json>)
    return "JSON value";
  else
    return "random engine state";
}

// JSON has no NaN or infinity; they travel as these strings.
inline constexpr const char* not_a_number_text = "NaN";
inline constexpr const char* infinity_text = "Infinity";
inline constexpr const char* negative_infinity_text = "-Infinity";

template <class T>
nlohmann::json to_metadata(const T& value) {
  static_assert(!std::is_same_v<T, long double>,
                "ckpt: long double does not fit in JSON metadata without loss; store a double instead");
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(value)) return not_a_number_text;
    if (std::isinf(value)) return value > 0 ? infinity_text : negative_infinity_text;
    // nlohmann writes doubles with 17 significant digits: they read back bit-exactly.
    return static_cast<double>(value);
  } else if constexpr (std::is_enum_v<T>) {
    return static_cast<std::underlying_type_t<T>>(value);
  } else if constexpr (is_random_engine<T>::value) {
    std::ostringstream text;
    text.imbue(std::locale::classic());  // a user's global locale must not change the digits
    text << value;
    return text.str();
  } else {
    return value;
  }
}

// The readers below take the JSON value as a template parameter (always
// nlohmann::json), so that the compiler checks their JSON code only in
// programs that load metadata (see "Compile time" in docs/architecture.md).
template <class Integer, class Json>
std::optional<Integer> integer_from_metadata(const Json& json) {
  using limits = std::numeric_limits<Integer>;
  if (json.is_number_unsigned()) {
    const auto number = json.template get<std::uint64_t>();
    if (number <= static_cast<std::uint64_t>(limits::max())) return static_cast<Integer>(number);
  } else if (json.is_number_integer()) {
    const auto number = json.template get<std::int64_t>();
    const bool fits =
        std::is_signed_v<Integer>
            ? number >= static_cast<std::int64_t>(limits::min()) && number <= static_cast<std::int64_t>(limits::max())
            : number >= 0 && static_cast<std::uint64_t>(number) <= static_cast<std::uint64_t>(limits::max());
    if (fits) return static_cast<Integer>(number);
  }
  return std::nullopt;
}

template <class Float, class Json>
std::optional<Float> float_from_metadata(const Json& json) {
  using limits = std::numeric_limits<Float>;
  if (json.is_number()) {
    const auto number = json.template get<double>();
    // A double beyond Float's range cannot be converted without undefined behaviour.
    if (std::abs(number) <= static_cast<double>(limits::max())) return static_cast<Float>(number);
  } else if (json.is_string()) {
    const auto& text = json.template get_ref<const std::string&>();
    if (text == not_a_number_text) return limits::quiet_NaN();
    if (text == infinity_text) return limits::infinity();
    if (text == negative_infinity_text) return -limits::infinity();
  }
  return std::nullopt;
}

template <class Engine, class Json>
std::optional<Engine> engine_from_metadata(const Json& json) {
  if (!json.is_string()) return std::nullopt;
  std::istringstream text(json.template get<std::string>());
  text.imbue(std::locale::classic());
  Engine engine;
  text >> engine;
  if (text.fail()) return std::nullopt;
  text >> std::ws;
  if (!text.eof()) return std::nullopt;
  return engine;
}

// The value of type T stored in `json`, or nullopt when `json` holds
// something else (another type, an integer out of range, a corrupt state).
template <class T, class Json>
std::optional<T> from_metadata(const Json& json) {
  if constexpr (std::is_same_v<T, bool>) {
    if (json.is_boolean()) return json.template get<bool>();
    return std::nullopt;
  } else if constexpr (std::is_floating_point_v<T>) {
    return float_from_metadata<T>(json);
  } else if constexpr (std::is_integral_v<T>) {
    return integer_from_metadata<T>(json);
  } else if constexpr (std::is_enum_v<T>) {
    const auto number = integer_from_metadata<std::underlying_type_t<T>>(json);
    if (number) return static_cast<T>(*number);
    return std::nullopt;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (json.is_string()) return json.template get<std::string>();
    return std::nullopt;
  } else if constexpr (std::is_same_v<T, nlohmann::json>) {
    return json;
  } else {
    return engine_from_metadata<T>(json);
  }
}

// A short rendering of a metadata value for reports. (A template only so that
// programs that load nothing do not compile nlohmann's dump for it.)
template <class Json>
std::string metadata_excerpt(const Json& json) {
  constexpr std::size_t max_excerpt = 60;
  return excerpt(json.dump(-1, ' ', false, Json::error_handler_t::replace), max_excerpt);
}

}  // namespace ckpt::detail

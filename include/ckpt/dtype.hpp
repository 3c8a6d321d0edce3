#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>

namespace ckpt {

// Element types, named as in safetensors. Only types every safetensors reader
// since 0.4.1 accepts are offered, so files stay open to other tools.
enum class DType : std::uint8_t { BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F16, BF16, F32, F64, F8_E4M3, F8_E5M2 };

inline constexpr DType all_dtypes[] = {
    DType::BOOL, DType::U8,  DType::I8,   DType::U16, DType::I16, DType::U32,     DType::I32,     DType::U64,
    DType::I64,  DType::F16, DType::BF16, DType::F32, DType::F64, DType::F8_E4M3, DType::F8_E5M2,
};

constexpr std::string_view dtype_name(DType dtype) noexcept {
  switch (dtype) {
    case DType::BOOL: return "BOOL";
    case DType::U8: return "U8";
    case DType::I8: return "I8";
    case DType::U16: return "U16";
    case DType::I16: return "I16";
    case DType::U32: return "U32";
    case DType::I32: return "I32";
    case DType::U64: return "U64";
    case DType::I64: return "I64";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F32: return "F32";
    case DType::F64: return "F64";
    case DType::F8_E4M3: return "F8_E4M3";
    case DType::F8_E5M2: return "F8_E5M2";
  }
  return "?";
}

constexpr std::size_t dtype_size(DType dtype) noexcept {
  // One line per element size.
  // clang-format off
  switch (dtype) {
    case DType::BOOL: case DType::U8: case DType::I8: case DType::F8_E4M3: case DType::F8_E5M2: return 1;
    case DType::U16: case DType::I16: case DType::F16: case DType::BF16: return 2;
    case DType::U32: case DType::I32: case DType::F32: return 4;
    case DType::U64: case DType::I64: case DType::F64: return 8;
  }
  // clang-format on
  return 0;
}

constexpr std::optional<DType> dtype_from_name(std::string_view name) noexcept {
  for (DType dtype : all_dtypes) {
    if (dtype_name(dtype) == name) return dtype;
  }
  return std::nullopt;
}

// Storage types for the formats C++ has no arithmetic type for. They hold the
// bits only; ckpt never does arithmetic on them.
// clang-format off
struct float16 { std::uint16_t bits; };
struct bfloat16 { std::uint16_t bits; };
struct float8_e4m3 { std::uint8_t bits; };
struct float8_e5m2 { std::uint8_t bits; };

namespace detail {
template <class T> struct dtype_of_impl;
template <> struct dtype_of_impl<bool> { static constexpr DType value = DType::BOOL; };
template <> struct dtype_of_impl<std::uint8_t> { static constexpr DType value = DType::U8; };
template <> struct dtype_of_impl<std::int8_t> { static constexpr DType value = DType::I8; };
template <> struct dtype_of_impl<std::uint16_t> { static constexpr DType value = DType::U16; };
template <> struct dtype_of_impl<std::int16_t> { static constexpr DType value = DType::I16; };
template <> struct dtype_of_impl<std::uint32_t> { static constexpr DType value = DType::U32; };
template <> struct dtype_of_impl<std::int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of_impl<std::uint64_t> { static constexpr DType value = DType::U64; };
template <> struct dtype_of_impl<std::int64_t> { static constexpr DType value = DType::I64; };
template <> struct dtype_of_impl<float16> { static constexpr DType value = DType::F16; };
template <> struct dtype_of_impl<bfloat16> { static constexpr DType value = DType::BF16; };
template <> struct dtype_of_impl<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of_impl<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of_impl<float8_e4m3> { static constexpr DType value = DType::F8_E4M3; };
template <> struct dtype_of_impl<float8_e5m2> { static constexpr DType value = DType::F8_E5M2; };
// clang-format on
// `char`, `long` and `long long` are distinct types whose width varies; map
// them by size and signedness so every integer type the user holds works.
template <class T, class = void>
struct has_dtype : std::false_type {};
template <class T>
struct has_dtype<T, std::void_t<decltype(dtype_of_impl<T>::value)>> : std::true_type {};
template <class T>
struct integer_alias {
  using type = std::conditional_t<
      std::is_signed_v<T>,
      std::conditional_t<sizeof(T) == 1, std::int8_t,
                         std::conditional_t<sizeof(T) == 2, std::int16_t,
                                            std::conditional_t<sizeof(T) == 4, std::int32_t, std::int64_t>>>,
      std::conditional_t<sizeof(T) == 1, std::uint8_t,
                         std::conditional_t<sizeof(T) == 2, std::uint16_t,
                                            std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>>>;
};
template <class T>
using storage_type_t =
    std::conditional_t<has_dtype<T>::value || !std::is_integral_v<T>, T, typename integer_alias<T>::type>;
}  // namespace detail

// True for the element types ckpt can store: arithmetic types and the
// storage structs above.
template <class T>
inline constexpr bool is_element_type_v = detail::has_dtype<detail::storage_type_t<std::remove_cv_t<T>>>::value;

// The DType of a C++ element type, e.g. `dtype_of<float>` is DType::F32.
template <class T>
inline constexpr DType dtype_of = detail::dtype_of_impl<detail::storage_type_t<std::remove_cv_t<T>>>::value;

}  // namespace ckpt

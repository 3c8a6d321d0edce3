#pragma once

// Element values as double, to measure how far two tensors differ.

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ckpt/dtype.hpp"

namespace ckpt::cli {

// A small float format: sign bit, `exponent_bits`, `mantissa_bits`. IEEE
// formats reserve the top exponent for inf/NaN; F8_E4M3 ("fn") has no inf
// and only the all-ones pattern as NaN.
inline double decode_small_float(std::uint32_t bits, int exponent_bits, int mantissa_bits, bool ieee) {
  const int bias = (1 << (exponent_bits - 1)) - 1;
  const std::uint32_t mantissa = bits & ((1u << mantissa_bits) - 1);
  const std::uint32_t exponent = (bits >> mantissa_bits) & ((1u << exponent_bits) - 1);
  const double sign = (bits >> (exponent_bits + mantissa_bits)) & 1 ? -1.0 : 1.0;
  const std::uint32_t top_exponent = (1u << exponent_bits) - 1;
  if (ieee && exponent == top_exponent) {
    return mantissa == 0 ? sign * std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  }
  if (!ieee && exponent == top_exponent && mantissa == (1u << mantissa_bits) - 1) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (exponent == 0) return sign * std::ldexp(mantissa, 1 - bias - mantissa_bits);
  return sign * std::ldexp(mantissa | (1u << mantissa_bits), static_cast<int>(exponent) - bias - mantissa_bits);
}

template <class T>
T load_element(const std::byte* element) {
  T value;
  std::memcpy(&value, element, sizeof value);
  return value;
}

inline double element_value(DType dtype, const std::byte* element) {
  switch (dtype) {
    case DType::BOOL: return load_element<std::uint8_t>(element) != 0 ? 1 : 0;
    case DType::U8: return static_cast<double>(load_element<std::uint8_t>(element));
    case DType::I8: return static_cast<double>(load_element<std::int8_t>(element));
    case DType::U16: return static_cast<double>(load_element<std::uint16_t>(element));
    case DType::I16: return static_cast<double>(load_element<std::int16_t>(element));
    case DType::U32: return static_cast<double>(load_element<std::uint32_t>(element));
    case DType::I32: return static_cast<double>(load_element<std::int32_t>(element));
    case DType::U64: return static_cast<double>(load_element<std::uint64_t>(element));
    case DType::I64: return static_cast<double>(load_element<std::int64_t>(element));
    case DType::F16: return decode_small_float(load_element<std::uint16_t>(element), 5, 10, true);
    case DType::BF16: return decode_small_float(load_element<std::uint16_t>(element), 8, 7, true);
    case DType::F32: return static_cast<double>(load_element<float>(element));
    case DType::F64: return static_cast<double>(load_element<double>(element));
    case DType::F8_E4M3: return decode_small_float(load_element<std::uint8_t>(element), 4, 3, false);
    case DType::F8_E5M2: return decode_small_float(load_element<std::uint8_t>(element), 5, 2, true);
  }
  return 0;
}

}  // namespace ckpt::cli

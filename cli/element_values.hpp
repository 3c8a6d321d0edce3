#pragma once

// Element values as double, to measure how far two tensors differ and to
// compute statistics of tensors.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

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

// Every value of a 1- or 2-byte float format, indexed by its bits: decoding
// a block of F16, F8_E4M3 or F8_E5M2 elements is then one lookup each.
inline const std::vector<double>& small_float_values(DType dtype) {
  auto table_of = [](DType of) {
    std::vector<double> table(std::size_t(1) << (8 * dtype_size(of)));
    for (std::size_t bits = 0; bits < table.size(); ++bits) {
      const auto stored = static_cast<std::uint16_t>(bits);
      std::byte element[2];
      std::memcpy(element, &stored, dtype_size(of));  // little-endian, like the files
      table[bits] = element_value(of, element);
    }
    return table;
  };
  static const std::vector<double> f16 = table_of(DType::F16);
  static const std::vector<double> e4m3 = table_of(DType::F8_E4M3);
  static const std::vector<double> e5m2 = table_of(DType::F8_E5M2);
  return dtype == DType::F16 ? f16 : dtype == DType::F8_E4M3 ? e4m3 : e5m2;
}

template <class Stored>
void widen_elements(const std::byte* elements, std::size_t count, double* out) {
  for (std::size_t i = 0; i < count; ++i)
    out[i] = static_cast<double>(load_element<Stored>(elements + i * sizeof(Stored)));
}

// The values of `count` consecutive elements, as element_value gives them,
// with the dtype dispatched once per block rather than once per element.
inline void element_values(DType dtype, const std::byte* elements, std::size_t count, double* out) {
  switch (dtype) {
    case DType::F32: return widen_elements<float>(elements, count, out);
    case DType::F64: return widen_elements<double>(elements, count, out);
    case DType::U8: return widen_elements<std::uint8_t>(elements, count, out);
    case DType::I8: return widen_elements<std::int8_t>(elements, count, out);
    case DType::U16: return widen_elements<std::uint16_t>(elements, count, out);
    case DType::I16: return widen_elements<std::int16_t>(elements, count, out);
    case DType::U32: return widen_elements<std::uint32_t>(elements, count, out);
    case DType::I32: return widen_elements<std::int32_t>(elements, count, out);
    case DType::U64: return widen_elements<std::uint64_t>(elements, count, out);
    case DType::I64: return widen_elements<std::int64_t>(elements, count, out);
    case DType::BF16:
      // The upper half of a float32: exact, and cheaper than a table.
      for (std::size_t i = 0; i < count; ++i) {
        const std::uint32_t bits = std::uint32_t(load_element<std::uint16_t>(elements + 2 * i)) << 16;
        float value;
        std::memcpy(&value, &bits, sizeof value);
        out[i] = value;
      }
      return;
    case DType::F16: {
      const std::vector<double>& table = small_float_values(dtype);
      for (std::size_t i = 0; i < count; ++i) out[i] = table[load_element<std::uint16_t>(elements + 2 * i)];
      return;
    }
    case DType::F8_E4M3:
    case DType::F8_E5M2: {
      const std::vector<double>& table = small_float_values(dtype);
      for (std::size_t i = 0; i < count; ++i) out[i] = table[load_element<std::uint8_t>(elements + i)];
      return;
    }
    case DType::BOOL:
      for (std::size_t i = 0; i < count; ++i) out[i] = element_value(dtype, elements + i);
      return;
  }
}

}  // namespace ckpt::cli

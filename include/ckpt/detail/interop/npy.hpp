#pragma once

// The NumPy .npy array header: writing it, and parsing the ones NumPy and
// other tools write (format versions 1.0, 2.0 and 3.0).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

inline constexpr std::string_view npy_magic = "\x93NUMPY";
// NumPy itself refuses headers over 10,000 bytes by default; allow more, but
// never let a hostile length make us allocate without bound.
inline constexpr std::size_t npy_max_header_bytes = std::size_t(1) << 20;
// Deflate cannot compress better than 1032:1, so the .npz and HDF5 readers
// refuse sizes beyond that ratio before allocating: memory stays bounded by
// what the file can really hold.
inline constexpr std::uint64_t deflate_max_ratio = 1032;
// Magic, two version bytes and the widest (4-byte) header length field.
inline constexpr std::size_t npy_max_preamble_bytes = 12;

// NumPy has no bfloat16 or float8: those travel as their raw bits in an
// unsigned integer of the same width, and the real dtype is recorded beside.
inline DType npy_storage_dtype(DType dtype) noexcept {
  switch (dtype) {
    case DType::BF16: return DType::U16;
    case DType::F8_E4M3:
    case DType::F8_E5M2: return DType::U8;
    default: return dtype;
  }
}

inline std::string_view npy_descr(DType dtype) noexcept {
  switch (npy_storage_dtype(dtype)) {
    case DType::BOOL: return "|b1";
    case DType::U8: return "|u1";
    case DType::I8: return "|i1";
    case DType::U16: return "<u2";
    case DType::I16: return "<i2";
    case DType::U32: return "<u4";
    case DType::I32: return "<i4";
    case DType::U64: return "<u8";
    case DType::I64: return "<i8";
    case DType::F16: return "<f2";
    case DType::F32: return "<f4";
    default: return "<f8";  // F64; the others were mapped to storage types above
  }
}

// Preamble and header of a C-order .npy array, padded so the data starts on a
// 64-byte boundary as NumPy does. Version 1.0 unless the header needs more
// than its 16-bit length field.
inline std::string npy_header(DType dtype, const Shape& shape) {
  std::string dict = join({"{'descr': '", npy_descr(dtype), "', 'fortran_order': False, 'shape': ("});
  for (std::size_t i = 0; i < shape.size(); ++i) dict += join({(i ? ", " : ""), shape[i]});
  dict += shape.size() == 1 ? ",), }" : "), }";
  const std::size_t unpadded = dict.size() + 1;  // + the closing '\n'
  const bool version1 = 10 + unpadded + 63 <= 0xFFFF;
  const std::size_t preamble = version1 ? 10 : 12;
  const std::size_t header_size = (preamble + unpadded + 63) / 64 * 64 - preamble;
  dict.append(header_size - unpadded, ' ');
  dict += '\n';

  std::string out(npy_magic);
  out += static_cast<char>(version1 ? 1 : 2);
  out += '\0';
  for (std::size_t i = 0; i < preamble - 8; ++i) out += static_cast<char>((header_size >> (8 * i)) & 0xFF);
  return out + dict;
}

// Checks the magic and version in the first 8 bytes (`available` of them
// present) and returns the preamble's size: 10 bytes for version 1.0, 12 for
// 2.0 and 3.0. `file` and `tensor` only name the array in error messages.
inline std::size_t npy_preamble_size(const unsigned char* bytes, std::size_t available, const std::string& file,
                                     const std::string& tensor) {
  if (available < 8 || std::string_view(reinterpret_cast<const char*>(bytes), 6) != npy_magic) {
    throw FormatError(ErrorId::format_header_size, file, tensor, "not a .npy array: expected the magic \\x93NUMPY");
  }
  const int major = bytes[6];
  if (major < 1 || major > 3) {
    throw FormatError(ErrorId::format_header_size, file, tensor,
                      join({"unsupported .npy format version ", major, ".", static_cast<int>(bytes[7]),
                            "; expected 1.0, 2.0 or 3.0"}));
  }
  return major == 1 ? 10 : 12;
}

struct NpyPreamble {
  std::size_t preamble_bytes = 0;  // magic + version + length field
  std::size_t header_bytes = 0;    // the dict text that follows
};

// `bytes` holds the first min(npy_max_preamble_bytes, member size) bytes.
inline NpyPreamble parse_npy_preamble(const unsigned char* bytes, std::size_t available, const std::string& file,
                                      const std::string& tensor) {
  NpyPreamble preamble;
  preamble.preamble_bytes = npy_preamble_size(bytes, available, file, tensor);
  if (available < preamble.preamble_bytes) {
    throw FormatError(ErrorId::format_header_size, file, tensor, "truncated .npy preamble");
  }
  for (std::size_t i = preamble.preamble_bytes; i-- > 8;)
    preamble.header_bytes = (preamble.header_bytes << 8) | bytes[i];
  if (preamble.header_bytes == 0 || preamble.header_bytes > npy_max_header_bytes) {
    throw FormatError(ErrorId::format_header_size, file, tensor,
                      join({".npy header length ", preamble.header_bytes, " is outside 1..", npy_max_header_bytes}));
  }
  return preamble;
}

struct NpyArrayInfo {
  DType dtype = DType::U8;
  Shape shape;
  bool fortran_order = false;
};

// The element types ckpt reads from a descr such as '<f4'. Big-endian and
// non-numeric types are refused with a message that says what to do.
inline DType dtype_from_npy_descr(std::string_view descr, const std::string& file, const std::string& tensor) {
  auto fail = [&](const std::string& why) -> DType {
    throw FormatError(ErrorId::format_tensor_entry, file, tensor, join({"dtype '", descr, "': ", why}));
  };
  if (descr.size() < 3) return fail("not a NumPy scalar type");
  const char order = descr[0];
  const std::string_view type = descr.substr(1);
  constexpr std::pair<std::string_view, DType> known[] = {
      {"b1", DType::BOOL}, {"u1", DType::U8},  {"i1", DType::I8},  {"u2", DType::U16},
      {"i2", DType::I16},  {"u4", DType::U32}, {"i4", DType::I32}, {"u8", DType::U64},
      {"i8", DType::I64},  {"f2", DType::F16}, {"f4", DType::F32}, {"f8", DType::F64},
  };
  for (const auto& [name, dtype] : known) {
    if (name != type) continue;
    if (order == '>' && dtype_size(dtype) > 1) {
      return fail("big-endian arrays are not supported; save them with arr.astype(arr.dtype.newbyteorder('<'))");
    }
    if (order != '<' && order != '|' && order != '=' && order != '>') return fail("unknown byte order");
    return dtype;
  }
  return fail("unsupported type; expected bool, (u)int8..64 or float16/32/64");
}

namespace npy_dict {

// Just enough of a Python literal parser for the header dict NumPy writes:
// strings, True/False and tuples of integers.
class Parser {
 public:
  Parser(std::string_view text, const std::string& file, const std::string& tensor)
      : text_(text), file_(file), tensor_(tensor) {}

  NpyArrayInfo parse() {
    std::optional<std::string> descr;
    std::optional<bool> fortran_order;
    std::optional<Shape> shape;
    expect('{');
    while (!accept('}')) {
      const std::string key = string_literal();
      expect(':');
      if (key == "descr") {
        skip_space();
        if (peek() != '\'' && peek() != '"') fail("structured dtypes (a list as 'descr') are not supported");
        assign_once(descr, string_literal(), key);
      } else if (key == "fortran_order") {
        assign_once(fortran_order, boolean(), key);
      } else if (key == "shape") {
        assign_once(shape, tuple(), key);
      } else {
        fail(join({"unexpected key '", key, "'"}));
      }
      if (!accept(',')) {
        expect('}');
        break;
      }
    }
    skip_space();
    if (pos_ != text_.size()) fail("unexpected text after the dict");
    if (!descr || !fortran_order || !shape) fail("the keys 'descr', 'fortran_order' and 'shape' are all required");
    return {dtype_from_npy_descr(*descr, file_, tensor_), std::move(*shape), *fortran_order};
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw FormatError(ErrorId::format_header_json, file_, tensor_,
                      join({"bad .npy header at offset ", pos_, ": ", what}));
  }
  template <class T>
  void assign_once(std::optional<T>& slot, T value, const std::string& key) {
    if (slot) fail(join({"duplicate key '", key, "'"}));
    slot = std::move(value);
  }
  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t' || text_[pos_] == '\n')) ++pos_;
  }
  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }
  bool accept(char c) {
    skip_space();
    if (peek() != c) return false;
    ++pos_;
    return true;
  }
  void expect(char c) {
    if (!accept(c)) fail(join({"expected '", std::string_view(&c, 1), "'"}));
  }
  bool accept_word(std::string_view word) {
    skip_space();
    if (text_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }
  std::string string_literal() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a string");
    const std::size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string_view::npos) fail("unterminated string");
    std::string value(text_.substr(pos_ + 1, end - pos_ - 1));
    if (value.find('\\') != std::string::npos) fail("escapes in strings are not supported");
    pos_ = end + 1;
    return value;
  }
  bool boolean() {
    if (accept_word("True")) return true;
    if (accept_word("False")) return false;
    fail("expected True or False");
  }
  std::uint64_t integer() {
    skip_space();
    std::uint64_t value = 0;
    const std::size_t start = pos_;
    while (peek() >= '0' && peek() <= '9') {
      const unsigned digit = static_cast<unsigned>(peek() - '0');
      if (value > (UINT64_MAX - digit) / 10) fail("dimension overflows 64 bits");
      value = value * 10 + digit;
      ++pos_;
    }
    if (pos_ == start) fail("expected a non-negative integer");
    if (peek() == 'L') ++pos_;  // Python 2 long literals, in files from old NumPy
    return value;
  }
  Shape tuple() {
    Shape shape;
    expect('(');
    while (!accept(')')) {
      shape.push_back(integer());
      if (!accept(',')) {
        expect(')');
        break;
      }
    }
    return shape;
  }

  std::string_view text_;
  const std::string& file_;
  const std::string& tensor_;
  std::size_t pos_ = 0;
};

}  // namespace npy_dict

inline NpyArrayInfo parse_npy_header(std::string_view header, const std::string& file, const std::string& tensor) {
  return npy_dict::Parser(header, file, tensor).parse();
}

// Reorders the elements of a Fortran-order (column-major) array into C order.
inline void fortran_to_c_order(const std::byte* source, std::byte* target, const Shape& shape,
                               std::size_t element_size) {
  const std::uint64_t count = element_count(shape);
  if (count == 0) return;
  Shape strides(shape.size(), 1);  // of the source, in elements
  for (std::size_t axis = 1; axis < shape.size(); ++axis) strides[axis] = strides[axis - 1] * shape[axis - 1];
  Shape index(shape.size(), 0);
  std::uint64_t offset = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::memcpy(target + i * element_size, source + offset * element_size, element_size);
    // Advance the C-order index: the last axis fastest.
    for (std::size_t axis = shape.size(); axis-- > 0;) {
      if (++index[axis] < shape[axis]) {
        offset += strides[axis];
        break;
      }
      offset -= strides[axis] * (shape[axis] - 1);
      index[axis] = 0;
    }
  }
}

}  // namespace ckpt::detail

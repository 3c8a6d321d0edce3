// The .npy header: what ckpt writes is what NumPy writes, and the parser
// accepts NumPy's variants and refuses the rest with a clear message.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "ckpt/detail/interop/npy.hpp"
#include "support/expect_error.hpp"

namespace {

using ckpt::DType;
using ckpt::Shape;
using ckpt::detail::npy_header;
using ckpt::detail::parse_npy_header;
using ckpt::detail::parse_npy_preamble;
using testing::HasSubstr;

const std::string file = "model.npz";
const std::string tensor = "w";

ckpt::detail::NpyPreamble preamble_of(const std::string& bytes) {
  return parse_npy_preamble(reinterpret_cast<const unsigned char*>(bytes.data()),
                            std::min<std::size_t>(bytes.size(), ckpt::detail::npy_max_preamble_bytes), file, tensor);
}

ckpt::detail::NpyArrayInfo round_trip(DType dtype, const Shape& shape) {
  const std::string bytes = npy_header(dtype, shape);
  const auto preamble = preamble_of(bytes);
  EXPECT_EQ(bytes.size() % 64, 0u) << "numpy aligns the data to 64 bytes";
  EXPECT_EQ(preamble.preamble_bytes + preamble.header_bytes, bytes.size());
  EXPECT_EQ(bytes.back(), '\n');
  return parse_npy_header(std::string_view(bytes).substr(preamble.preamble_bytes), file, tensor);
}

TEST(NpyHeader, IsWhatNumpyWrites) {
  // NumPy 1.24's bytes for np.zeros((3, 4), '<f4'): 10-byte preamble, 118-byte header.
  const std::string expected =
      std::string("\x93NUMPY\x01\x00\x76\x00", 10) + "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
  const std::string header = npy_header(DType::F32, {3, 4});
  EXPECT_EQ(header.substr(0, expected.size()), expected);
  EXPECT_EQ(header.size(), 128u);
  EXPECT_NE(npy_header(DType::I64, {5}).find("'shape': (5,), }"), std::string::npos);
  EXPECT_NE(npy_header(DType::BOOL, {}).find("'descr': '|b1', 'fortran_order': False, 'shape': (), }"),
            std::string::npos);
}

TEST(NpyHeader, RoundTripsEveryDtypeThroughItsStorageType) {
  for (DType dtype : ckpt::all_dtypes) {
    const auto info = round_trip(dtype, {2, 0, 7});
    EXPECT_EQ(info.dtype, ckpt::detail::npy_storage_dtype(dtype)) << ckpt::dtype_name(dtype);
    EXPECT_EQ(info.shape, (Shape{2, 0, 7}));
    EXPECT_FALSE(info.fortran_order);
  }
  EXPECT_EQ(ckpt::detail::npy_storage_dtype(DType::BF16), DType::U16);
  EXPECT_EQ(ckpt::detail::npy_storage_dtype(DType::F8_E5M2), DType::U8);
}

TEST(NpyHeader, UsesVersion2WhenTheHeaderOutgrowsVersion1) {
  const Shape many_axes(25000, 1);
  const std::string bytes = npy_header(DType::F32, many_axes);
  EXPECT_EQ(bytes[6], 2);
  EXPECT_EQ(round_trip(DType::F32, many_axes).shape, many_axes);
}

TEST(NpyHeader, AcceptsVersion3AndNumpysSpellingVariants) {
  // Version 3.0 is 2.0 (a 4-byte header length) with a UTF-8 header.
  const std::string dict = "{\"shape\":(3L,),\"fortran_order\":True,\"descr\":\"<f4\"}\n";
  const std::string bytes = std::string("\x93NUMPY\x03\x00", 8) + std::string(1, static_cast<char>(dict.size())) +
                            std::string(3, '\0') + dict;
  const auto preamble = preamble_of(bytes);
  EXPECT_EQ(preamble.preamble_bytes, 12u);
  const auto info = parse_npy_header(dict, file, tensor);
  EXPECT_EQ(info.dtype, DType::F32);
  EXPECT_EQ(info.shape, Shape{3});
  EXPECT_TRUE(info.fortran_order);
}

void expect_format_error(const std::function<void()>& parse, ckpt::ErrorId id, const std::string& message) {
  ckpt::test::expect_error<ckpt::FormatError>(parse, id, {message, "file 'model.npz'", "tensor 'w'"});
}

TEST(NpyHeader, RefusesBadPreambles) {
  using ckpt::ErrorId;
  expect_format_error([] { preamble_of("PK\x03\x04 not numpy"); }, ErrorId::format_header_size, "magic");
  expect_format_error([] { preamble_of(std::string("\x93NUMPY\x04\x00\x10\x00", 10)); }, ErrorId::format_header_size,
                      "unsupported .npy format version 4.0");
  expect_format_error([] { preamble_of(std::string("\x93NUMPY\x01\x00\x00\x00", 10)); }, ErrorId::format_header_size,
                      "header length 0");
  expect_format_error([] { preamble_of(std::string("\x93NUMPY\x02\x00\xff\xff\xff\xff", 12)); },
                      ErrorId::format_header_size, "header length 4294967295");
  expect_format_error([] { preamble_of(std::string("\x93NUMPY\x02\x00\x10", 9)); }, ErrorId::format_header_size,
                      "truncated .npy preamble");
}

TEST(NpyHeader, RefusesDtypesCkptCannotHoldSayingWhy) {
  using ckpt::ErrorId;
  auto parse = [](const std::string& descr) {
    return [descr] {
      parse_npy_header("{'descr': '" + descr + "', 'fortran_order': False, 'shape': (2,), }", file, tensor);
    };
  };
  expect_format_error(parse(">f4"), ErrorId::format_tensor_entry, "big-endian arrays are not supported");
  expect_format_error(parse("<c8"), ErrorId::format_tensor_entry, "dtype '<c8': unsupported type");
  expect_format_error(parse("<U5"), ErrorId::format_tensor_entry, "unsupported type");
  expect_format_error(parse("O"), ErrorId::format_tensor_entry, "not a NumPy scalar type");
  EXPECT_EQ(parse_npy_header("{'descr': '>u1', 'fortran_order': False, 'shape': (), }", file, tensor).dtype, DType::U8)
      << "byte order does not matter for single bytes";
  expect_format_error(
      [] { parse_npy_header("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (), }", file, tensor); },
      ErrorId::format_header_json, "structured dtypes");
}

TEST(NpyHeader, RefusesMalformedDicts) {
  using ckpt::ErrorId;
  const std::pair<std::string, std::string> cases[] = {
      {"{'descr': '<f4', 'shape': (2,), }", "are all required"},
      {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "duplicate key 'descr'"},
      {"{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,)}", "expected True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (-2,)}", "non-negative integer"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "overflows"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", "unexpected key 'extra'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} trailing", "unexpected text"},
      {"{'descr: '<f4'", "expected ':'"},
      {"", "expected '{'"},
  };
  for (const auto& [header, message] : cases) {
    expect_format_error([&] { parse_npy_header(header, file, tensor); }, ErrorId::format_header_json, message);
  }
}

TEST(FortranOrder, ReordersToCOrder) {
  // np.asfortranarray(np.arange(6).reshape(2, 3)) holds 0 3 1 4 2 5 in memory.
  const std::uint8_t column_major[] = {0, 3, 1, 4, 2, 5};
  std::uint8_t row_major[6] = {};
  ckpt::detail::fortran_to_c_order(reinterpret_cast<const std::byte*>(column_major),
                                   reinterpret_cast<std::byte*>(row_major), {2, 3}, 1);
  EXPECT_EQ(std::vector<int>(row_major, row_major + 6), (std::vector<int>{0, 1, 2, 3, 4, 5}));

  // 3-D, 2-byte elements: element (i, j, k) of shape (2, 3, 4) sits at i + 2j + 6k in Fortran order.
  std::uint16_t source[24], target[24];
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) source[i + 2 * j + 6 * k] = static_cast<std::uint16_t>(100 * i + 10 * j + k);
  ckpt::detail::fortran_to_c_order(reinterpret_cast<const std::byte*>(source), reinterpret_cast<std::byte*>(target),
                                   {2, 3, 4}, 2);
  for (int index = 0; index < 24; ++index) {
    EXPECT_EQ(target[index], 100 * (index / 12) + 10 * (index / 4 % 3) + index % 4) << index;
  }
}

}  // namespace

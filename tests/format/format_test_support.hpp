#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/ckpt.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace ckpt_format_test {

using ckpt::test::read_file;
using ckpt::test::write_file;

// The format tests ask for entries(), the shared helper's names().
class TempDir : public ckpt::test::TempDir {
 public:
  std::vector<std::string> entries() const { return names(); }
};

inline std::string le64(std::uint64_t value) {
  std::string bytes(8, '\0');
  ckpt::detail::store_le64(value, bytes.data());
  return bytes;
}

// A safetensors file from header text and data bytes, as a foreign (or
// hostile) writer would produce it.
inline std::string safetensors_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

// The bits of element `i` of the test pattern for an element of `width`
// bytes: distinct per element and per byte, so any misplaced byte shows.
inline std::uint64_t pattern_bits(std::uint64_t i, std::size_t width) {
  switch (width) {
    case 1: return (i * 7 + 3) & 0xFF;
    case 2: return (i * 2654 + 11) & 0xFFFF;
    case 4: return (i * 2654435761ULL + 17) & 0xFFFFFFFFULL;
    default: return i * 11400714819323198485ULL + 29;
  }
}

// `count` elements of `dtype` following the pattern (BOOL: i % 3 == 0).
inline std::vector<std::byte> pattern_bytes(ckpt::DType dtype, std::uint64_t count) {
  const std::size_t width = ckpt::dtype_size(dtype);
  std::vector<std::byte> bytes(count * width);
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::uint64_t bits = dtype == ckpt::DType::BOOL ? (i % 3 == 0) : pattern_bits(i, width);
    for (std::size_t b = 0; b < width; ++b) bytes[i * width + b] = std::byte((bits >> (8 * b)) & 0xFF);
  }
  return bytes;
}

inline std::string bytes_as_string(const std::byte* data, std::size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Rewrites a ckpt file's header through `edit` (which sees it with its member
// order kept) and re-seals it with a valid header checksum, so a test can
// produce a file that is intact except for the one thing it changes.
template <class Edit>
void rewrite_header(const std::string& path, Edit edit) {
  const std::string bytes = read_file(path);
  const std::uint64_t size = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data()));
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(bytes.substr(8, size));
  edit(header);
  std::string text = header.dump();
  text.append((64 - (8 + text.size()) % 64) % 64, ' ');
  std::string sealed = le64(text.size()) + text;
  const std::string checksum = ckpt::detail::checksum_to_hex(
      ckpt::detail::header_checksum(reinterpret_cast<const std::byte*>(sealed.data()), sealed.size()));
  if (sealed.compare(8, ckpt::detail::checksum_prefix.size(), ckpt::detail::checksum_prefix) == 0) {
    sealed.replace(ckpt::detail::checksum_value_offset, checksum.size(), checksum);
  }
  write_file(path, sealed + bytes.substr(8 + size));
}

// Edits the JSON held in the string __metadata__[key].
template <class Edit>
void rewrite_metadata_json(const std::string& path, const std::string& key, Edit edit) {
  rewrite_header(path, [&](nlohmann::ordered_json& header) {
    nlohmann::ordered_json inner = nlohmann::ordered_json::parse(header["__metadata__"][key].get<std::string>());
    edit(inner);
    header["__metadata__"][key] = inner.dump();
  });
}

using ckpt::test::expect_id_and_message;

// Expects `statement` to throw `Class` with `error_id` and a message holding
// every further argument.
#define CKPT_EXPECT_ERROR(statement, Class, error_id, ...) \
  ::ckpt::test::expect_error<Class>([&] { statement; }, error_id, {__VA_ARGS__})

}  // namespace ckpt_format_test

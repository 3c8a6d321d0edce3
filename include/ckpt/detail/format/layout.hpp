#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/version.hpp"

// The layout of a checkpoint file as docs/format.md specifies it: the
// constants, keys and limits, and one tensor's record in the header.
// header_writer.hpp builds a header from records; header_parser.hpp reads
// and validates one.
namespace ckpt::detail {

inline constexpr std::uint64_t max_header_bytes = 100'000'000;  // the reference reader's limit
inline constexpr std::uint64_t data_alignment = 64;             // the data buffer starts at a multiple of this
inline constexpr std::size_t max_header_depth = 8;              // a valid header nests 3 levels deep
inline constexpr std::size_t max_metadata_depth = 256;          // user metadata JSON
inline constexpr std::size_t max_header_array = 1024;           // shapes and offsets in the header
inline constexpr std::uint64_t max_chunk_bytes = std::uint64_t(1) << 30;  // bounds one chunk's decoded size
inline constexpr std::uint64_t max_block_bytes = std::uint64_t(1) << 30;  // bounds a raw tensor's checksum blocks
// The newest format version this build reads (docs/format.md, section 6);
// format_version (version.hpp) is the one it writes.
inline constexpr int newest_readable_format_version = 3;
inline constexpr int first_block_format_version = 2;  // the first with block checksums
static_assert(format_version <= newest_readable_format_version, "a build reads what it writes");
// A chunk decodes to at most this many times its stored size. zstd's densest
// encoding (runs of one byte) stays below 32768; the bound stops a small
// hostile stream from making a reader allocate gigabytes. chunk_table.hpp
// applies both chunk limits.
inline constexpr std::uint64_t max_expansion = 65536;

inline constexpr std::string_view metadata_key = "__metadata__";
inline constexpr std::string_view raw_codec = "raw";

namespace keys {
inline constexpr const char* header_checksum = "ckpt.header_xxh3";
inline constexpr const char* format = "format";
inline constexpr const char* format_version = "ckpt.format_version";
inline constexpr const char* user_metadata = "ckpt.metadata";
inline constexpr const char* tensors = "ckpt.tensors";
}  // namespace keys

// The header checksum is the first member of `__metadata__`, which is the
// first member of the header, so its value sits at a fixed offset that a
// reader can check before trusting anything else in the header.
inline constexpr std::string_view checksum_prefix = R"({"__metadata__":{"ckpt.header_xxh3":")";
inline constexpr std::uint64_t checksum_value_offset = 8 + checksum_prefix.size();

// One tensor as the header describes it. For raw tensors the stored dtype and
// shape are the logical ones; an encoded tensor is stored as U8 [stored bytes].
struct TensorRecord {
  std::string name;
  DType dtype = DType::U8;
  Shape shape;
  std::string codec{raw_codec};
  DType stored_dtype = DType::U8;
  // Of the stored bytes, U8 [size], read for encoded tensors only: a raw
  // tensor's bytes have its `shape`, and a save does not copy it here.
  Shape stored_shape;
  std::uint64_t begin = 0;  // offsets relative to the data buffer, end exclusive
  std::uint64_t end = 0;
  bool checksummed = false;
  std::uint64_t stored_xxh3 = 0;  // of the stored bytes
  std::uint64_t raw_xxh3 = 0;     // of the decoded bytes (encoded tensors only)
  std::uint64_t chunk_bytes = 0;  // raw bytes per chunk (encoded tensors only)
  std::vector<std::uint64_t> chunk_sizes;
  // Format version 2 (docs/format.md, section 4): the XXH3 of each block of
  // the stored bytes. A raw tensor's blocks hold block_bytes stored bytes
  // each (the last one the rest); an encoded tensor's blocks are its chunks,
  // block_starts giving where each begins (and, last, the stored size).
  bool block_checksummed = false;
  std::uint64_t block_bytes = 0;
  std::vector<std::uint64_t> block_xxh3;
  std::vector<std::uint64_t> block_starts;

  bool encoded() const noexcept { return codec != raw_codec; }
  // The shape of the tensor's safetensors entry (docs/format.md, section 2).
  const Shape& entry_shape() const noexcept { return encoded() ? stored_shape : shape; }
  std::uint64_t stored_bytes() const noexcept { return end - begin; }
};

inline std::uint64_t load_le64(const std::byte* bytes) noexcept {
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<std::uint8_t>(bytes[i]);
  return value;
}

inline void store_le64(std::uint64_t value, char* out) noexcept {
  for (int i = 0; i < 8; ++i, value >>= 8) out[i] = static_cast<char>(value & 0xFF);
}

// XXH3 of bytes [0, data_start) with the 16 hex digits of the header checksum
// read as ASCII '0' (docs/format.md, "Header checksum").
inline std::uint64_t header_checksum(const std::byte* bytes, std::uint64_t data_start) noexcept {
  static constexpr char placeholder[checksum_hex_digits + 1] = "0000000000000000";
  Xxh3Stream stream;
  stream.update(bytes, checksum_value_offset);
  stream.update(placeholder, checksum_hex_digits);
  const std::uint64_t after = checksum_value_offset + checksum_hex_digits;
  stream.update(bytes + after, data_start - after);
  return stream.digest();
}

inline std::string known_dtype_names() {
  std::string names;
  for (DType dtype : all_dtypes) names += (names.empty() ? "" : ", ") + std::string(dtype_name(dtype));
  return names;
}

}  // namespace ckpt::detail

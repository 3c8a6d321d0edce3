#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/checksum.hpp"
#include "ckpt/detail/strict_json.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/version.hpp"

// The safetensors header of a checkpoint and ckpt's information inside its
// `__metadata__`, exactly as docs/format.md specifies them: the layout's
// constants and rules, and how the writer builds the header. Reading and
// validating it is header_parser.hpp's job.
namespace ckpt::detail {

inline constexpr std::uint64_t max_header_bytes = 100'000'000;  // the reference reader's limit
inline constexpr std::uint64_t data_alignment = 64;             // the data buffer starts at a multiple of this
inline constexpr std::size_t max_header_depth = 8;              // a valid header nests 3 levels deep
inline constexpr std::size_t max_metadata_depth = 256;          // user metadata JSON
inline constexpr std::size_t max_header_array = 1024;           // shapes and offsets in the header
inline constexpr std::uint64_t max_chunk_bytes = std::uint64_t(1) << 30;  // bounds one chunk's decoded size
// A chunk decodes to at most this many times its stored size. zstd's densest
// encoding (runs of one byte) stays below 32768; the bound stops a small
// hostile stream from making a reader allocate gigabytes.
inline constexpr std::uint64_t max_expansion = 65536;

inline bool within_expansion(std::uint64_t decoded_bytes, std::uint64_t stored_bytes) noexcept {
  return (decoded_bytes + max_expansion - 1) / max_expansion <= stored_bytes;
}

// Decoded size of chunk `index` of a tensor of `raw_bytes` in chunks of `chunk_bytes`.
inline std::uint64_t chunk_decoded_bytes(std::uint64_t raw_bytes, std::uint64_t chunk_bytes, std::size_t index) {
  return std::min(chunk_bytes, raw_bytes - index * chunk_bytes);
}
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
  Shape stored_shape;
  std::uint64_t begin = 0;  // offsets relative to the data buffer, end exclusive
  std::uint64_t end = 0;
  bool checksummed = false;
  std::uint64_t stored_xxh3 = 0;  // of the stored bytes
  std::uint64_t raw_xxh3 = 0;     // of the decoded bytes (encoded tensors only)
  std::uint64_t chunk_bytes = 0;  // raw bytes per chunk (encoded tensors only)
  std::vector<std::uint64_t> chunk_sizes;

  bool encoded() const noexcept { return codec != raw_codec; }
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

// What is wrong with a tensor name in any checkpoint, or nullopt.
inline std::optional<std::string> tensor_name_problem(std::string_view name) {
  if (name.empty()) return "expected a non-empty tensor name, found an empty one";
  if (name.find('\0') != std::string_view::npos) return "expected a tensor name without NUL, found one";
  if (name == metadata_key) return "the name '__metadata__' is reserved by safetensors";
  if (!is_valid_utf8(name)) return "expected a UTF-8 tensor name, found invalid UTF-8";
  // Tools export tensors to files named after them: no name may climb out of
  // or escape the directory they export to.
  if (name.front() == '/' || name.back() == '/') return "expected a name without '/' at its ends, found one";
  const std::string wrapped = "/" + std::string(name) + "/";
  if (wrapped.find("/../") != std::string::npos) return "expected a name without a '..' component, found one";
  return std::nullopt;
}

// A name as error messages show it: a NUL would end the message early.
inline std::string printable_name(std::string_view name) {
  std::string text;
  for (char c : name) text += c == '\0' ? std::string("\\0") : std::string(1, c);
  return text;
}

inline std::string known_dtype_names() {
  std::string names;
  for (DType dtype : all_dtypes) names += (names.empty() ? "" : ", ") + std::string(dtype_name(dtype));
  return names;
}

inline nlohmann::json shape_json(const Shape& shape) {
  nlohmann::json array = nlohmann::json::array();
  for (std::uint64_t extent : shape) array.push_back(extent);
  return array;
}

inline std::string tensor_info_json(const TensorRecord& record) {
  nlohmann::ordered_json info;
  info["codec"] = record.codec;
  info["xxh3"] = checksum_to_hex(record.stored_xxh3);
  if (record.encoded()) {
    info["dtype"] = std::string(dtype_name(record.dtype));
    info["shape"] = shape_json(record.shape);
    info["chunk_bytes"] = record.chunk_bytes;
    info["chunks"] = record.chunk_sizes;
    info["raw_xxh3"] = checksum_to_hex(record.raw_xxh3);
  }
  return info.dump();
}

inline std::string tensor_entry_json(const TensorRecord& record) {
  nlohmann::ordered_json entry;
  entry["dtype"] = std::string(dtype_name(record.stored_dtype));
  entry["shape"] = shape_json(record.stored_shape);
  entry["data_offsets"] = {record.begin, record.end};
  return entry.dump();
}

// A JSON object assembled as text, because nlohmann's ordered_json inserts
// in linear time and a header may hold many thousands of tensors.
class JsonObjectText {
 public:
  void add(const std::string& key, const std::string& value_json) {
    text_ += text_.size() > 1 ? "," : "";
    text_ += nlohmann::json(key).dump() + ":" + value_json;
  }
  std::string close() const { return text_ + "}"; }

 private:
  std::string text_ = "{";
};

// The bytes before the data buffer: N, the JSON header padded with spaces to
// a multiple of data_alignment, with the header checksum filled in.
// `records` are in file order with offsets assigned. Throws nlohmann's
// type_error when a string is not UTF-8 (the writer checks names first).
inline std::string build_header(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata) {
  JsonObjectText infos;
  for (const TensorRecord& record : records) infos.add(record.name, tensor_info_json(record));

  JsonObjectText metadata;
  metadata.add(keys::header_checksum, nlohmann::json(std::string(checksum_hex_digits, '0')).dump());
  metadata.add(keys::format, "\"pt\"");
  metadata.add(keys::format_version, nlohmann::json(std::to_string(format_version)).dump());
  metadata.add(keys::user_metadata, nlohmann::json(user_metadata.dump()).dump());
  metadata.add(keys::tensors, nlohmann::json(infos.close()).dump());

  JsonObjectText root;
  root.add(std::string(metadata_key), metadata.close());
  for (const TensorRecord& record : records) root.add(record.name, tensor_entry_json(record));

  std::string bytes = std::string(8, '\0') + root.close();
  bytes.append((data_alignment - bytes.size() % data_alignment) % data_alignment, ' ');

  const std::uint64_t header_size = bytes.size() - 8;
  if (header_size > max_header_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "expected a header of at most 100000000 bytes, found " + std::to_string(header_size) +
                            " (too many tensors or too much metadata)");
  }
  store_le64(header_size, bytes.data());
  const std::string checksum = checksum_to_hex(header_checksum(reinterpret_cast<const std::byte*>(bytes.data()),
                                                               bytes.size()));
  bytes.replace(checksum_value_offset, checksum_hex_digits, checksum);
  return bytes;
}

// Byte size of dtype x shape, or nullopt when the element count or the byte
// size overflows 64 bits (as in the reference reader, even when a later
// extent is 0).
inline std::optional<std::uint64_t> checked_byte_size(DType dtype, const Shape& shape) {
  std::uint64_t count = 1;
  for (std::uint64_t extent : shape) {
    if (extent != 0 && count > UINT64_MAX / extent) return std::nullopt;
    count *= extent;
  }
  if (count > UINT64_MAX / dtype_size(dtype)) return std::nullopt;
  return count * dtype_size(dtype);
}

}  // namespace ckpt::detail

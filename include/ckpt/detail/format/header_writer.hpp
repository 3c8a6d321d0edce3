#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/error.hpp"
#include "ckpt/version.hpp"

// Builds the bytes before a checkpoint's data buffer (docs/format.md,
// sections 1 to 4) from the tensors' records.
namespace ckpt::detail {

// The header is assembled as text, member by member in the order
// docs/format.md gives, rather than through nlohmann's ordered_json: that
// type inserts in linear time (a header may hold many thousands of tensors),
// and as a second instantiation of basic_json it doubled the JSON code every
// program that saves compiles. Everything here is a template only so that
// programs that write no file do not compile it (see "Compile time" in
// docs/architecture.md).

// A string as JSON text. nlohmann escapes it, and throws its type_error when
// the string is not UTF-8.
// Printable ASCII other than '"' and '\\' (most keys and values of a
// header) stands for itself: quoted directly, without nlohmann's serializer,
// whose set-up per call dominated headers of 100,000 tensors.
template <class = void>
std::string json_string(std::string text) {
  const bool plain =
      std::all_of(text.begin(), text.end(), [](char c) { return c >= 0x20 && c < 0x7f && c != '"' && c != '\\'; });
  if (plain) return '"' + std::move(text) + '"';
  return nlohmann::json(std::move(text)).dump();
}

template <class = void>
std::string json_array(const std::vector<std::uint64_t>& values) {
  std::string text = "[";
  for (std::uint64_t value : values) {
    if (text.size() > 1) text += ',';
    text += std::to_string(value);
  }
  return text + "]";
}

// Checksums as a JSON array of hex strings (fixed width: 18 bytes each).
template <class = void>
std::string json_checksums(const std::vector<std::uint64_t>& values) {
  std::string text = "[";
  text.reserve(1 + values.size() * (checksum_hex_digits + 3));
  for (std::uint64_t value : values) {
    if (text.size() > 1) text += ',';
    text += '"' + checksum_to_hex(value) + '"';
  }
  return text + "]";
}

// A JSON object written member by member: `value_json` is JSON text already.
template <class = void>
class JsonObjectText {
 public:
  // Appended piece by piece: a header of many tensors holds megabytes of
  // JSON, which temporaries would copy again.
  JsonObjectText& add(const std::string& key, const std::string& value_json) {
    text_ += text_.size() > 1 ? "," : "";
    text_ += json_string(key);
    text_ += ':';
    text_ += value_json;
    return *this;
  }
  std::string close() && {
    text_ += '}';
    return std::move(text_);
  }

 private:
  std::string text_ = "{";
};

// A streaming save reserves the header's space before it knows the numbers
// of encoded tensors and the offsets after the first of them: `widest`
// prints each such number at its widest, 20 digits (checksums are always 16
// hex digits), so every real value fits in the space it reserved.
inline constexpr std::uint64_t widest_number = ~std::uint64_t(0);

template <class = void>
std::string json_array_widest(std::size_t count) {
  return json_array(std::vector<std::uint64_t>(count, widest_number));
}

template <class = void>
std::string tensor_info_json(const TensorRecord& record, bool widest = false) {
  JsonObjectText<> info;
  info.add("codec", json_string(record.codec)).add("xxh3", json_string(checksum_to_hex(record.stored_xxh3)));
  if (record.encoded()) {
    info.add("dtype", json_string(std::string(dtype_name(record.dtype))))
        .add("shape", json_array(record.shape))
        .add("chunk_bytes", std::to_string(record.chunk_bytes))
        .add("chunks", widest ? json_array_widest(record.chunk_sizes.size()) : json_array(record.chunk_sizes))
        .add("raw_xxh3", json_string(checksum_to_hex(record.raw_xxh3)));
  } else {
    info.add("block_bytes", std::to_string(record.block_bytes));
  }
  return std::move(info.add("blocks", json_checksums(record.block_xxh3))).close();
}

template <class = void>
std::string tensor_entry_json(const TensorRecord& record, bool widest_size = false, bool widest_offsets = false) {
  JsonObjectText<> entry;
  entry.add("dtype", json_string(std::string(dtype_name(record.stored_dtype))))
      .add("shape", widest_size ? json_array_widest(record.stored_shape.size()) : json_array(record.stored_shape))
      .add("data_offsets", widest_offsets ? json_array_widest(2) : json_array({record.begin, record.end}));
  return std::move(entry).close();
}

// The bytes before the data buffer: N, the JSON header padded with spaces to
// a multiple of data_alignment (and to at least `reserved_bytes`, the space a
// streaming save set aside before it knew the numbers), with the header
// checksum filled in. `records` are in file order with offsets assigned.
// Throws nlohmann's type_error when a string is not UTF-8 (the writer checks
// names first).
//
// With `reserve`, the numbers a streaming save learns while it writes (those
// of encoded tensors, and offsets from the first encoded tensor on) are
// printed at their widest: the result's size is the space to reserve.
// What an incremental save adds to a header (docs/format.md, section 8):
// members of __metadata__ after ckpt.tensors (key, JSON text to store as a
// string) and, for a file with references, a later format version.
struct HeaderExtras {
  int format_version = ckpt::format_version;
  std::vector<std::pair<std::string, std::string>> metadata;
};

template <class = void>
std::string build_header(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata,
                         std::uint64_t reserved_bytes = 0, bool reserve = false, const HeaderExtras& extras = {}) {
  JsonObjectText<> infos;
  for (const TensorRecord& record : records)
    infos.add(record.name, tensor_info_json(record, reserve && record.encoded()));

  JsonObjectText<> metadata;
  metadata.add(keys::header_checksum, json_string(std::string(checksum_hex_digits, '0')));
  metadata.add(keys::format, "\"pt\"");
  metadata.add(keys::format_version, json_string(std::to_string(extras.format_version)));
  metadata.add(keys::user_metadata, json_string(user_metadata.dump()));
  metadata.add(keys::tensors, json_string(std::move(infos).close()));
  for (const auto& [key, json] : extras.metadata) metadata.add(key, json_string(json));

  JsonObjectText<> root;
  root.add(std::string(metadata_key), std::move(metadata).close());
  bool offsets_known = true;  // raw tensors before the first encoded one have exact offsets when reserving
  for (const TensorRecord& record : records) {
    offsets_known = offsets_known && !record.encoded();
    const bool widest = reserve && record.encoded();
    root.add(record.name, tensor_entry_json(record, widest, reserve && !offsets_known));
  }

  std::string bytes(8, '\0');
  bytes += std::move(root).close();
  bytes.append((data_alignment - bytes.size() % data_alignment) % data_alignment, ' ');
  if (bytes.size() < reserved_bytes) bytes.append(reserved_bytes - bytes.size(), ' ');

  const std::uint64_t header_size = bytes.size() - 8;
  if (header_size > max_header_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "expected a header of at most " + std::to_string(max_header_bytes) + " bytes, found " +
                            std::to_string(header_size) + " (too many tensors or too much metadata)");
  }
  store_le64(header_size, bytes.data());
  const std::string checksum =
      checksum_to_hex(header_checksum(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  bytes.replace(checksum_value_offset, checksum_hex_digits, checksum);
  return bytes;
}

// The size of the header a streaming save writes last, known before any of
// the numbers it learns while writing (see build_header's `reserve`).
template <class = void>
std::uint64_t reserved_header_bytes(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata,
                                    const HeaderExtras& extras = {}) {
  return build_header(records, user_metadata, 0, true, extras).size();
}

}  // namespace ckpt::detail

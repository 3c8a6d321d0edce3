#pragma once

#include <cstdint>
#include <string>
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
template <class = void>
std::string json_string(const std::string& text) {
  return nlohmann::json(text).dump();
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

// A JSON object written member by member: `value_json` is JSON text already.
template <class = void>
class JsonObjectText {
 public:
  JsonObjectText& add(const std::string& key, const std::string& value_json) {
    text_ += text_.size() > 1 ? "," : "";
    text_ += json_string(key) + ":" + value_json;
    return *this;
  }
  std::string close() const { return text_ + "}"; }

 private:
  std::string text_ = "{";
};

template <class = void>
std::string tensor_info_json(const TensorRecord& record) {
  JsonObjectText<> info;
  info.add("codec", json_string(record.codec)).add("xxh3", json_string(checksum_to_hex(record.stored_xxh3)));
  if (record.encoded()) {
    info.add("dtype", json_string(std::string(dtype_name(record.dtype))))
        .add("shape", json_array(record.shape))
        .add("chunk_bytes", std::to_string(record.chunk_bytes))
        .add("chunks", json_array(record.chunk_sizes))
        .add("raw_xxh3", json_string(checksum_to_hex(record.raw_xxh3)));
  }
  if (record.block_checksummed) {
    if (!record.encoded()) info.add("block_bytes", std::to_string(record.block_bytes));
    std::string blocks = "[";
    for (std::uint64_t block : record.block_xxh3) {
      blocks += (blocks.size() > 1 ? ",\"" : "\"") + checksum_to_hex(block) + "\"";
    }
    info.add("blocks", blocks + "]");
  }
  return info.close();
}

template <class = void>
std::string tensor_entry_json(const TensorRecord& record) {
  return JsonObjectText<>()
      .add("dtype", json_string(std::string(dtype_name(record.stored_dtype))))
      .add("shape", json_array(record.stored_shape))
      .add("data_offsets", json_array({record.begin, record.end}))
      .close();
}

// The bytes before the data buffer: N, the JSON header padded with spaces to
// a multiple of data_alignment, with the header checksum filled in.
// `records` are in file order with offsets assigned. Throws nlohmann's
// type_error when a string is not UTF-8 (the writer checks names first).
template <class = void>
std::string build_header(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata) {
  JsonObjectText<> infos;
  for (const TensorRecord& record : records) infos.add(record.name, tensor_info_json(record));

  JsonObjectText<> metadata;
  metadata.add(keys::header_checksum, json_string(std::string(checksum_hex_digits, '0')));
  metadata.add(keys::format, "\"pt\"");
  metadata.add(keys::format_version, json_string(std::to_string(format_version)));
  metadata.add(keys::user_metadata, json_string(user_metadata.dump()));
  metadata.add(keys::tensors, json_string(infos.close()));

  JsonObjectText<> root;
  root.add(std::string(metadata_key), metadata.close());
  for (const TensorRecord& record : records) root.add(record.name, tensor_entry_json(record));

  std::string bytes = std::string(8, '\0') + root.close();
  bytes.append((data_alignment - bytes.size() % data_alignment) % data_alignment, ' ');

  const std::uint64_t header_size = bytes.size() - 8;
  if (header_size > max_header_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "expected a header of at most " + std::to_string(max_header_bytes) + " bytes, found " +
                            std::to_string(header_size) + " (too many tensors or too much metadata)");
  }
  store_le64(header_size, bytes.data());
  const std::string checksum = checksum_to_hex(header_checksum(reinterpret_cast<const std::byte*>(bytes.data()),
                                                               bytes.size()));
  bytes.replace(checksum_value_offset, checksum_hex_digits, checksum);
  return bytes;
}

}  // namespace ckpt::detail

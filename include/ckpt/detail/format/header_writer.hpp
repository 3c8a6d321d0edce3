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

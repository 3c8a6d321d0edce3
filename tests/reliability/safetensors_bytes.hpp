#pragma once

// The safetensors container at the byte level, written from the specification
// (8-byte little-endian header length N, N bytes of JSON padded with spaces,
// then the data buffer), independent of ckpt's own reader and writer.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "support/files.hpp"

namespace ckpt::test {

using Bytes = std::vector<std::byte>;

inline Bytes to_bytes(const std::string& text) {
  Bytes bytes(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) bytes[i] = static_cast<std::byte>(text[i]);
  return bytes;
}

inline void append_u64_le(Bytes& out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out.push_back(std::byte(value >> (8 * i) & 0xFF));
}

inline std::uint64_t read_u64_le(const Bytes& bytes) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8 && i < static_cast<int>(bytes.size()); ++i) {
    value |= std::uint64_t(std::to_integer<unsigned>(bytes[i])) << (8 * i);
  }
  return value;
}

// A container whose header-length field says `declared_size`, whatever the
// header really holds: the tool for lying about it.
inline Bytes container_declaring(std::uint64_t declared_size, const std::string& header, const Bytes& data = {}) {
  Bytes file;
  append_u64_le(file, declared_size);
  const Bytes text = to_bytes(header);
  file.insert(file.end(), text.begin(), text.end());
  file.insert(file.end(), data.begin(), data.end());
  return file;
}

// A well-framed container: the header padded with spaces to a multiple of 8.
inline Bytes container(std::string header, const Bytes& data = {}) {
  header.append((8 - header.size() % 8) % 8, ' ');
  return container_declaring(header.size(), header, data);
}

// Marks the bytes whose change alters nothing a reader may see: the spaces
// after the header's JSON value and the whitespace between its tokens.
inline std::vector<bool> padding_mask(const Bytes& file) {
  std::vector<bool> mask(file.size(), false);
  if (file.size() < 8) return mask;
  const std::uint64_t header_end = std::min<std::uint64_t>(8 + read_u64_le(file), file.size());
  bool in_string = false;
  bool escaped = false;
  for (std::size_t i = 8; i < header_end; ++i) {
    const char c = static_cast<char>(file[i]);
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else {
      mask[i] = c == ' ' || c == '\t' || c == '\n' || c == '\r';
    }
  }
  return mask;
}

inline Bytes read_file_bytes(const std::string& path) { return to_bytes(read_file(path)); }

inline void write_file_bytes(const std::string& path, const Bytes& bytes) {
  write_file(path, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace ckpt::test

#pragma once

// Recognises the formats the ckpt tool reads by a file's first bytes, whatever
// the file is called:
//   safetensors  an 8-byte little-endian header size, then the JSON header,
//                which starts with '{' (the size itself is the reader's to
//                check, so that a damaged size is reported as corruption);
//   .npz         a zip archive: a local file header "PK\3\4", or the end
//                record "PK\5\6" an empty archive consists of;
//   HDF5         the superblock signature "\211HDF\r\n\032\n" at offset 0, 512,
//                1024, 2048, ... (a file may start with a user block; these are
//                the offsets the HDF5 library searches).

#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

namespace ckpt::cli {

// `distributed`: a distributed checkpoint directory (docs/distributed.md).
enum class FileFormat { safetensors, npz, hdf5, distributed };

namespace signature {

constexpr char hdf5[] = "\x89HDF\r\n\x1a\n";
constexpr std::size_t hdf5_size = sizeof hdf5 - 1;
constexpr std::uint64_t hdf5_first_user_block = 512;

inline bool starts_with(const char* bytes, std::streamsize size, const char* prefix, std::size_t prefix_size) {
  return size >= static_cast<std::streamsize>(prefix_size) && std::memcmp(bytes, prefix, prefix_size) == 0;
}

inline bool hdf5_superblock_at(std::ifstream& file, std::uint64_t offset) {
  char bytes[hdf5_size];
  file.clear();
  file.seekg(static_cast<std::streamoff>(offset));
  file.read(bytes, sizeof bytes);
  return starts_with(bytes, file.gcount(), hdf5, hdf5_size);
}

}  // namespace signature

// The format the file's content shows, or nothing when the file cannot be
// read or its first bytes match none (too short, damaged at the start, or
// another kind of file).
inline std::optional<FileFormat> format_by_content(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return std::nullopt;
  char head[9];
  file.read(head, sizeof head);
  const std::streamsize size = file.gcount();
  if (signature::starts_with(head, size, signature::hdf5, signature::hdf5_size)) return FileFormat::hdf5;
  if (signature::starts_with(head, size, "PK\3\4", 4) || signature::starts_with(head, size, "PK\5\6", 4)) {
    return FileFormat::npz;
  }
  if (size == sizeof head && head[8] == '{') return FileFormat::safetensors;

  file.clear();
  file.seekg(0, std::ios::end);
  const std::streamoff end = file.tellg();
  if (end < 0) return std::nullopt;
  const auto file_size = static_cast<std::uint64_t>(end);
  for (std::uint64_t offset = signature::hdf5_first_user_block; offset + signature::hdf5_size <= file_size;
       offset *= 2) {
    if (signature::hdf5_superblock_at(file, offset)) return FileFormat::hdf5;
  }
  return std::nullopt;
}

}  // namespace ckpt::cli

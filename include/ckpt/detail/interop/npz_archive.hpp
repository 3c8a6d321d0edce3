#pragma once

// Reading and writing the zip container of a .npz file through libzip, and the
// sidecar member that records what NumPy cannot.

#include <fcntl.h>
#include <unistd.h>
#include <zip.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/interop/npy.hpp"
#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

// The member holding what NumPy cannot: real dtypes and checkpoint metadata.
inline constexpr const char* npz_sidecar_name = "__ckpt__.json";

namespace detail {

inline constexpr std::uint64_t npz_max_sidecar_bytes = std::uint64_t(64) << 20;

struct ZipDiscard {
  void operator()(zip_t* archive) const { zip_discard(archive); }
};
struct ZipFileClose {
  void operator()(zip_file_t* member) const { zip_fclose(member); }
};
using ZipArchive = std::unique_ptr<zip_t, ZipDiscard>;
using ZipMember = std::unique_ptr<zip_file_t, ZipFileClose>;

[[noreturn]] inline void throw_zip_error(zip_error_t* error, const std::string& file, const std::string& tensor,
                                         const std::string& doing) {
  const std::string what = doing + ": " + zip_error_strerror(error);
  switch (zip_error_code_zip(error)) {
    case ZIP_ER_NOENT:
    case ZIP_ER_OPEN: throw IoError(ErrorId::io_open, file, tensor, what);
    case ZIP_ER_READ:
    case ZIP_ER_SEEK: throw IoError(ErrorId::io_read, file, tensor, what);
    case ZIP_ER_WRITE:
    case ZIP_ER_TMPOPEN:
    case ZIP_ER_CLOSE: throw IoError(ErrorId::io_write, file, tensor, what);
    case ZIP_ER_RENAME: throw IoError(ErrorId::io_rename, file, tensor, what);
    case ZIP_ER_CRC: throw IntegrityError(ErrorId::integrity_tensor_checksum, file, tensor, what);
    case ZIP_ER_ZLIB:
    case ZIP_ER_COMPNOTSUPP: throw CodecError(ErrorId::codec_decode, file, tensor, what);
    default: throw FormatError(ErrorId::format_truncated, file, tensor, what);
  }
}

[[noreturn]] inline void throw_zip_code(int code, const std::string& file, const std::string& tensor,
                                        const std::string& doing) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  try {
    throw_zip_error(&error, file, tensor, doing);
  } catch (...) {
    zip_error_fini(&error);
    throw;
  }
}

// Streams one member of a read-only archive, checking its size claims first.
class NpzMemberReader {
 public:
  NpzMemberReader(zip_t* archive, zip_uint64_t index, const zip_stat_t& stat, std::uint64_t file_size,
                  const std::string& file, const std::string& tensor)
      : size_(stat.size), file_(file), tensor_(tensor) {
    if (stat.encryption_method != ZIP_EM_NONE) fail_format("encrypted members are not supported");
    if (stat.comp_size > file_size) fail_format("compressed size exceeds the file size");
    if (stat.comp_method == ZIP_CM_STORE) {
      if (stat.size != stat.comp_size) fail_format("stored member with different compressed and real sizes");
    } else if (stat.comp_method == ZIP_CM_DEFLATE) {
      if (stat.size / deflate_max_ratio > stat.comp_size) {
        fail_format("claims " + std::to_string(stat.size) + " bytes from " + std::to_string(stat.comp_size) +
                    " deflated bytes, beyond deflate's limit");
      }
    } else {
      fail_format("compression method " + std::to_string(stat.comp_method) +
                  " is not supported; expected stored or deflate (np.savez / np.savez_compressed)");
    }
    member_.reset(zip_fopen_index(archive, index, 0));
    if (!member_) throw_zip_error(zip_get_error(archive), file_, tensor_, "opening member");
  }

  std::uint64_t size() const noexcept { return size_; }

  void read(void* out, std::uint64_t count) {
    auto* bytes = static_cast<unsigned char*>(out);
    while (count > 0) {
      const zip_int64_t got = zip_fread(member_.get(), bytes, count);
      if (got < 0) throw_zip_error(zip_file_get_error(member_.get()), file_, tensor_, "reading member");
      if (got == 0) throw FormatError(ErrorId::format_truncated, file_, tensor_, "member ends early");
      bytes += got;
      count -= static_cast<std::uint64_t>(got);
    }
  }

  // libzip checks the CRC-32 when the stream reaches its end, so read to it.
  void finish() {
    unsigned char probe;
    const zip_int64_t got = zip_fread(member_.get(), &probe, 1);
    if (got < 0) throw_zip_error(zip_file_get_error(member_.get()), file_, tensor_, "reading member");
    if (got > 0) throw FormatError(ErrorId::format_trailing_bytes, file_, tensor_, "bytes after the array data");
  }

  [[noreturn]] void fail_format(const std::string& what) const {
    throw FormatError(ErrorId::format_truncated, file_, tensor_, what);
  }

 private:
  std::uint64_t size_;
  std::string file_;
  std::string tensor_;
  ZipMember member_;
};

// `real_dtype` is the dtype the sidecar recorded for a tensor stored as bits.
inline Tensor read_npy_member(NpzMemberReader& member, const std::string& file, const std::string& tensor,
                              std::optional<DType> real_dtype) {
  // Read exactly the preamble (its size depends on the version), then the header.
  unsigned char preamble_bytes[npy_max_preamble_bytes];
  std::size_t available = static_cast<std::size_t>(std::min<std::uint64_t>(member.size(), 8));
  member.read(preamble_bytes, available);
  const std::size_t preamble_size = npy_preamble_size(preamble_bytes, available, file, tensor);
  if (member.size() >= preamble_size) {
    member.read(preamble_bytes + available, preamble_size - available);
    available = preamble_size;
  }
  const NpyPreamble preamble = parse_npy_preamble(preamble_bytes, available, file, tensor);
  if (preamble.preamble_bytes + preamble.header_bytes > member.size()) {
    throw FormatError(ErrorId::format_truncated, file, tensor, ".npy header runs past the end of the member");
  }
  std::string header(preamble.header_bytes, '\0');
  member.read(header.data(), header.size());
  NpyArrayInfo info = parse_npy_header(header, file, tensor);
  if (real_dtype) {
    if (npy_storage_dtype(*real_dtype) != info.dtype) {
      throw FormatError(ErrorId::format_metadata, file, tensor,
                        std::string(npz_sidecar_name) + " says " + std::string(dtype_name(*real_dtype)) +
                            ", which needs " + std::string(npy_descr(*real_dtype)) + " bits; found " +
                            std::string(npy_descr(info.dtype)));
    }
    info.dtype = *real_dtype;
  }

  const auto checked_bytes = checked_byte_size(info.dtype, info.shape);
  if (!checked_bytes) {
    throw FormatError(ErrorId::format_byte_size, file, tensor, "shape " + shape_to_string(info.shape) + " overflows");
  }
  const std::uint64_t data_bytes = *checked_bytes;
  const std::uint64_t found = member.size() - preamble.preamble_bytes - preamble.header_bytes;
  if (found != data_bytes) {
    throw FormatError(ErrorId::format_byte_size, file, tensor,
                      "expected " + std::to_string(data_bytes) + " data bytes for " +
                          std::string(dtype_name(info.dtype)) + " " + shape_to_string(info.shape) + ", found " +
                          std::to_string(found));
  }
  Tensor tensor_data = Tensor::allocate(info.dtype, info.shape);
  if (!info.fortran_order || info.shape.size() < 2) {
    member.read(tensor_data.mutable_data(), data_bytes);
  } else {
    std::vector<std::byte> column_major(data_bytes);
    member.read(column_major.data(), data_bytes);
    fortran_to_c_order(column_major.data(), tensor_data.mutable_data(), info.shape, dtype_size(info.dtype));
  }
  member.finish();
  return tensor_data;
}

inline std::string npz_tensor_name(const std::string& member_name) {
  constexpr std::string_view suffix = ".npy";
  if (member_name.size() <= suffix.size() ||
      member_name.compare(member_name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return {};
  }
  return member_name.substr(0, member_name.size() - suffix.size());
}

// What the sidecar member records: the real dtype of tensors stored as bits,
// and the checkpoint metadata.
struct NpzSidecar {
  std::map<std::string, DType> real_dtypes;
  nlohmann::json metadata = nlohmann::json::object();
};

inline NpzSidecar parse_npz_sidecar(const std::string& text, const std::string& file) {
  auto fail = [&](const std::string& tensor, const std::string& what) {
    throw FormatError(ErrorId::format_metadata, file, tensor, std::string(npz_sidecar_name) + ": " + what);
  };
  const nlohmann::json sidecar = nlohmann::json::parse(text, nullptr, false);
  if (!sidecar.is_object()) fail("", "expected a JSON object");
  NpzSidecar parsed;
  if (const auto metadata = sidecar.find("metadata"); metadata != sidecar.end()) parsed.metadata = *metadata;
  const auto dtypes = sidecar.find("dtypes");
  if (dtypes == sidecar.end()) return parsed;
  if (!dtypes->is_object()) fail("", "'dtypes' must be an object");
  for (const auto& [name, value] : dtypes->items()) {
    const auto dtype = value.is_string() ? dtype_from_name(value.get<std::string>()) : std::nullopt;
    if (!dtype) fail(name, "unknown dtype " + value.dump());
    parsed.real_dtypes.emplace(name, *dtype);
  }
  return parsed;
}

// libzip has renamed its complete temp file over `path`; make that durable.
inline void sync_written_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_system_error(ErrorId::io_sync, path, "opening to fsync", errno);
  const int synced = file_system().fsync(fd);
  const int error = errno;
  ::close(fd);
  if (synced != 0) throw_system_error(ErrorId::io_sync, path, "fsync", error);
  fsync_directory(directory_of(path));
}

}  // namespace detail
}  // namespace ckpt

#pragma once

// Reading and writing the zip container of a .npz file through libzip, and the
// sidecar member that records what NumPy cannot.

#include <zip.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/interop/npy.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/detail/text.hpp"
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
  const std::string what = join({doing, ": ", zip_error_strerror(error)});
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

// Throws the error `error` holds and releases what it holds.
[[noreturn]] inline void throw_owned_zip_error(zip_error_t& error, const std::string& file, const std::string& tensor,
                                               const std::string& doing) {
  try {
    throw_zip_error(&error, file, tensor, doing);
  } catch (...) {
    zip_error_fini(&error);
    throw;
  }
}

// Opens the archive `file` maps for reading. libzip parses the mapped bytes
// and never opens the file itself, so an import reads through the
// file-system seam like a checkpoint does.
inline ZipArchive open_mapped_archive(const MappedFile& file) {
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(file.data(), file.size(), 0, &error);
  if (source == nullptr) throw_owned_zip_error(error, file.path(), "", "opening archive");
  zip_t* archive = zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error);
  if (archive == nullptr) {
    zip_source_free(source);
    throw_owned_zip_error(error, file.path(), "", "opening archive");
  }
  zip_error_fini(&error);
  return ZipArchive(archive);
}

// What libzip writes when it saves an archive, as a libzip source that
// writes through an AtomicFile: an export passes through the file-system
// seam and is published like a checkpoint (temp file, fsync, rename,
// directory fsync), never written in place. The archive is always written
// from scratch: the source says no file exists yet, so libzip reads nothing.
class NpzFileTarget {
 public:
  NpzFileTarget(std::string path, bool durable) : path_(std::move(path)), durable_(durable) { zip_error_init(&error_); }
  NpzFileTarget(const NpzFileTarget&) = delete;
  NpzFileTarget& operator=(const NpzFileTarget&) = delete;
  ~NpzFileTarget() { zip_error_fini(&error_); }

  // A new archive that zip_close writes through this target; it must not
  // outlive this object.
  ZipArchive create_archive() {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_function_create(&NpzFileTarget::call, this, &error);
    if (source == nullptr) throw_owned_zip_error(error, path_, "", "creating archive");
    zip_t* archive = zip_open_from_source(source, ZIP_CREATE | ZIP_TRUNCATE, &error);
    if (archive == nullptr) {
      zip_source_free(source);
      throw_owned_zip_error(error, path_, "", "creating archive");
    }
    zip_error_fini(&error);
    return ZipArchive(archive);
  }

  // After libzip reported a failure: throws ckpt's own error when one of the
  // calls below caught it (it names the errno, e.g. a full disk), else libzip's.
  [[noreturn]] void throw_failure(zip_error_t* libzip_error, const std::string& doing) const {
    if (failure_) std::rethrow_exception(failure_);
    throw_zip_error(libzip_error, path_, "", doing);
  }

 private:
  static zip_int64_t call(void* state, void* data, zip_uint64_t length, zip_source_cmd_t command) {
    auto& target = *static_cast<NpzFileTarget*>(state);
    // libzip is C: nothing may be thrown through it. A caught error is kept
    // for throw_failure and libzip is told the call failed.
    try {
      return target.handle(data, length, command);
    } catch (...) {
      target.failure_ = std::current_exception();
      zip_error_set(&target.error_, ZIP_ER_WRITE, 0);
      return -1;
    }
  }

  zip_int64_t handle(void* data, zip_uint64_t length, zip_source_cmd_t command) {
    switch (command) {
      case ZIP_SOURCE_SUPPORTS: return ZIP_SOURCE_SUPPORTS_WRITABLE;
      case ZIP_SOURCE_STAT:
        // What libzip takes for "no such file": it then creates the archive without reading.
        zip_error_set(&error_, ZIP_ER_READ, ENOENT);
        return -1;
      case ZIP_SOURCE_ERROR: return zip_error_to_data(&error_, data, length);
      case ZIP_SOURCE_BEGIN_WRITE:
        file_.emplace(path_);
        position_ = 0;
        return 0;
      case ZIP_SOURCE_WRITE:
        file_->write_at(position_, data, static_cast<std::size_t>(length));
        position_ += length;
        return static_cast<zip_int64_t>(length);
      case ZIP_SOURCE_SEEK_WRITE: {
        const zip_int64_t position = zip_source_seek_compute_offset(position_, file_->size(), data, length, &error_);
        if (position < 0) return -1;
        position_ = static_cast<std::uint64_t>(position);
        return 0;
      }
      case ZIP_SOURCE_TELL_WRITE: return static_cast<zip_int64_t>(position_);
      case ZIP_SOURCE_COMMIT_WRITE:
        file_->commit(durable_);
        file_.reset();
        return 0;
      case ZIP_SOURCE_ROLLBACK_WRITE:
        file_.reset();  // removes the temp file; the path keeps what it held
        return 0;
      case ZIP_SOURCE_REMOVE:
        // libzip never writes an archive without members and removes the file
        // instead; NumPy writes one (np.savez()), and an export must leave a
        // file that loads: the 22-byte end record of an empty archive.
        write_empty_archive();
        return 0;
      case ZIP_SOURCE_FREE: return 0;  // this object is owned by save_npz
      default:
        // The reading commands: never sent, since the archive does not exist yet.
        zip_error_set(&error_, ZIP_ER_OPNOTSUPP, 0);
        return -1;
    }
  }

  void write_empty_archive() {
    static constexpr unsigned char end_of_central_directory[22] = {'P', 'K', 5, 6};
    AtomicFile file(path_);
    file.write(end_of_central_directory, sizeof end_of_central_directory);
    file.commit(durable_);
  }

  std::string path_;
  bool durable_;
  zip_error_t error_;
  std::optional<AtomicFile> file_;
  std::uint64_t position_ = 0;
  std::exception_ptr failure_;
};

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
        fail_format(
            join({"claims ", stat.size, " bytes from ", stat.comp_size, " deflated bytes, beyond deflate's limit"}));
      }
    } else {
      fail_format(join({"compression method ", stat.comp_method,
                        " is not supported; expected stored or deflate (np.savez / np.savez_compressed)"}));
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
                        join({npz_sidecar_name, " says ", dtype_name(*real_dtype), ", which needs ",
                              npy_descr(*real_dtype), " bits; found ", npy_descr(info.dtype)}));
    }
    info.dtype = *real_dtype;
  }

  const auto checked_bytes = checked_byte_size(info.dtype, info.shape);
  if (!checked_bytes) {
    throw FormatError(ErrorId::format_byte_size, file, tensor,
                      join({"shape ", shape_to_string(info.shape), " overflows"}));
  }
  const std::uint64_t data_bytes = *checked_bytes;
  const std::uint64_t found = member.size() - preamble.preamble_bytes - preamble.header_bytes;
  if (found != data_bytes) {
    throw FormatError(ErrorId::format_byte_size, file, tensor,
                      join({"expected ", data_bytes, " data bytes for ", dtype_name(info.dtype), " ",
                            shape_to_string(info.shape), ", found ", found}));
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
    throw FormatError(ErrorId::format_metadata, file, tensor, join({npz_sidecar_name, ": ", what}));
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
    if (!dtype) fail(name, join({"unknown dtype ", value.dump()}));
    parsed.real_dtypes.emplace(name, *dtype);
  }
  return parsed;
}

}  // namespace detail
}  // namespace ckpt

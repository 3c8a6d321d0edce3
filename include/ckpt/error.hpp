#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace ckpt {

// Stable error ids, documented in the README. The hundreds digit is the kind
// (the exception class); the id itself never changes meaning once released.
enum class ErrorId : int {
  // IoError
  io_open = 101,
  io_write = 102,
  io_no_space = 103,
  io_sync = 104,
  io_rename = 105,
  io_read = 106,
  io_map = 107,
  io_remove = 108,
  // FormatError
  format_truncated = 201,
  format_header_size = 202,
  format_header_json = 203,
  format_tensor_entry = 204,
  format_offsets = 205,
  format_byte_size = 206,
  format_trailing_bytes = 207,
  format_metadata = 208,
  format_newer_version = 209,
  // IntegrityError
  integrity_tensor_checksum = 301,
  integrity_header_checksum = 302,
  // CodecError
  codec_unknown = 401,
  codec_decode = 402,
  codec_encode = 403,
  // MismatchError
  mismatch_state = 501,
  mismatch_missing_tensor = 502,
  // ArgumentError
  argument_invalid = 601,
  argument_name = 602,
  argument_duplicate_name = 603,
  // StateError (manager and lifecycle)
  state_locked = 701,
  state_not_found = 702,
  state_async_failed = 703,
  state_uncommitted = 704,   // a checkpoint directory without its index: its save never committed
  state_rank_failed = 705,   // another rank of a distributed save or load failed outside ckpt
  state_exists = 706,        // a committed checkpoint is already where a save would write
};

namespace detail {

inline const char* error_kind(ErrorId id) {
  switch (static_cast<int>(id) / 100) {
    case 1: return "io_error";
    case 2: return "format_error";
    case 3: return "integrity_error";
    case 4: return "codec_error";
    case 5: return "mismatch_error";
    case 6: return "argument_error";
    default: return "state_error";
  }
}

// "[ckpt.format_error.205] file 'a.safetensors': tensor 'w': <what>"
inline std::string format_error_message(ErrorId id, const std::string& file, const std::string& tensor,
                                        const std::string& what) {
  std::string message = "[ckpt." + std::string(error_kind(id)) + "." + std::to_string(static_cast<int>(id)) + "] ";
  if (!file.empty()) message += "file '" + file + "': ";
  if (!tensor.empty()) message += "tensor '" + tensor + "': ";
  return message + what;
}

}  // namespace detail

// Base of every exception ckpt throws. `file()` and `tensor()` are empty when
// the error concerns no file or no single tensor.
class Error : public std::runtime_error {
 public:
  Error(ErrorId id, std::string file, std::string tensor, const std::string& what)
      : std::runtime_error(detail::format_error_message(id, file, tensor, what)),
        id_(id),
        file_(std::move(file)),
        tensor_(std::move(tensor)) {}

  ErrorId id() const noexcept { return id_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }

 private:
  ErrorId id_;
  std::string file_;
  std::string tensor_;
};

// The operating system refused an operation (open, write, fsync, rename, ...).
class IoError : public Error { using Error::Error; };
// The file is not a well-formed checkpoint / safetensors container.
class FormatError : public Error { using Error::Error; };
// A checksum does not match: the bytes on disk changed after they were written.
class IntegrityError : public Error { using Error::Error; };
// A codec is unknown, or refused to encode or decode.
class CodecError : public Error { using Error::Error; };
// The file is fine but does not match the state it is loaded into.
class MismatchError : public Error { using Error::Error; };
// A caller passed a bad argument (name, option, shape).
class ArgumentError : public Error { using Error::Error; };
// A lifecycle problem: a locked directory, a missing checkpoint, a failed async save.
class StateError : public Error { using Error::Error; };

}  // namespace ckpt

#pragma once

#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "ckpt/detail/text.hpp"

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
  integrity_reference = 303,  // a file an incremental checkpoint references is not the one it was saved against
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
  // Retired: a failed async save now reaches the caller as the error it
  // failed with (a full disk stays io_no_space). The number is never reused.
  state_async_failed [[deprecated("a failed async save is thrown with its own class and id")]] = 703,
  state_uncommitted = 704,  // a checkpoint directory without its index: its save never committed
  state_rank_failed = 705,  // another rank of a distributed save or load failed outside ckpt
  state_exists = 706,       // a committed checkpoint is already where a save would write
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

// "[ckpt.format_error.205] file 'a.safetensors': tensor 'w': <message>"
inline std::string format_error_message(ErrorId id, const std::string& file, const std::string& tensor,
                                        const std::string& message) {
  std::string text = join({"[ckpt.", error_kind(id), ".", static_cast<int>(id), "] "});
  if (!file.empty()) text += join({"file '", file, "': "});
  if (!tensor.empty()) text += join({"tensor '", tensor, "': "});
  text += message;
  return text;
}

}  // namespace detail

// Base of every exception ckpt throws. An error keeps its parts as fields:
// the id, the file and the tensor it concerns (empty when it concerns no file
// or no single tensor) and the message; what() is built from them once.
class Error : public std::runtime_error {
 public:
  Error(ErrorId id, std::string file, std::string tensor, std::string message)
      : std::runtime_error(detail::format_error_message(id, file, tensor, message)),
        id_(id),
        file_(std::move(file)),
        tensor_(std::move(tensor)),
        message_(std::move(message)) {}

  ErrorId id() const noexcept { return id_; }
  const std::string& file() const noexcept { return file_; }
  const std::string& tensor() const noexcept { return tensor_; }
  // What went wrong, without the "[ckpt.kind.id] file '...': tensor '...': "
  // that what() puts before it.
  const std::string& message() const noexcept { return message_; }

  // Throws this error again, of its own class and with its own id, naming
  // `file` and `tensor` where it named none and with `context` (such as
  // "codec 'zstd', chunk 3 of 8: ") before its message. Code that knows more
  // than the thrower (a codec knows no file, a tensor_traits hook no name)
  // adds it this way, so nothing ever picks apart the text of what().
  [[noreturn]] void rethrow_with(const std::string& file, const std::string& tensor = {},
                                 const std::string& context = {}) const {
    std::rethrow_exception(in_context(file, tensor, context));
  }

 protected:
  // This error with the context of rethrow_with, as an exception of the
  // class each kind gives (see detail::ErrorOfKind).
  virtual std::exception_ptr in_context(const std::string& file, const std::string& tensor,
                                        const std::string& context) const {
    return in_context_as<Error>(file, tensor, context);
  }

  template <class Kind>
  std::exception_ptr in_context_as(const std::string& file, const std::string& tensor,
                                   const std::string& context) const {
    return std::make_exception_ptr(
        Kind(id_, file_.empty() ? file : file_, tensor_.empty() ? tensor : tensor_, context + message_));
  }

 private:
  ErrorId id_;
  std::string file_;
  std::string tensor_;
  std::string message_;
};

namespace detail {

// The base of each kind of error: makes rethrow_with throw the kind itself,
// so that adding context never turns an IoError into a plain Error.
template <class Kind>
class ErrorOfKind : public Error {
 public:
  using Error::Error;

 protected:
  std::exception_ptr in_context(const std::string& file, const std::string& tensor,
                                const std::string& context) const override {
    return in_context_as<Kind>(file, tensor, context);
  }
};

}  // namespace detail

// The operating system refused an operation (open, write, fsync, rename, ...).
class IoError : public detail::ErrorOfKind<IoError> {
  using ErrorOfKind::ErrorOfKind;
};
// The file is not a well-formed checkpoint / safetensors container.
class FormatError : public detail::ErrorOfKind<FormatError> {
  using ErrorOfKind::ErrorOfKind;
};
// A checksum does not match: the bytes on disk changed after they were written.
class IntegrityError : public detail::ErrorOfKind<IntegrityError> {
  using ErrorOfKind::ErrorOfKind;
};
// A codec is unknown, or refused to encode or decode.
class CodecError : public detail::ErrorOfKind<CodecError> {
  using ErrorOfKind::ErrorOfKind;
};
// The file is fine but does not match the state it is loaded into.
class MismatchError : public detail::ErrorOfKind<MismatchError> {
  using ErrorOfKind::ErrorOfKind;
};
// A caller passed a bad argument (name, option, shape).
class ArgumentError : public detail::ErrorOfKind<ArgumentError> {
  using ErrorOfKind::ErrorOfKind;
};
// A lifecycle problem: a locked directory, a missing checkpoint.
class StateError : public detail::ErrorOfKind<StateError> {
  using ErrorOfKind::ErrorOfKind;
};

}  // namespace ckpt

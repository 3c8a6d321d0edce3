#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"

namespace ckpt {

// A codec turns one chunk of a tensor's bytes into stored bytes and back.
// Tensors larger than a chunk are split by the writer, and chunks are encoded
// and decoded in parallel, so implementations must be safe to call from
// several threads at once on different chunks.
class Codec {
 public:
  virtual ~Codec() = default;

  // Name recorded per tensor in the file; a reader looks it up in the
  // registry to find the decoder. Must not contain ':'.
  virtual std::string name() const = 0;

  // Appends the encoding of `size` bytes at `data` to `out`. `element_size`
  // is the width of one element (1, 2, 4 or 8), for filters that work on it.
  virtual void encode(const std::byte* data, std::size_t size, std::size_t element_size,
                      std::vector<std::byte>& out) const = 0;

  // Decodes `size` stored bytes into exactly `out_size` bytes at `out`.
  // Throws CodecError (ErrorId::codec_decode) when the input is corrupt or
  // does not decode to exactly `out_size` bytes; never writes past `out_size`.
  virtual void decode(const std::byte* data, std::size_t size, std::size_t element_size, std::byte* out,
                      std::size_t out_size) const = 0;
};

// Builds a codec from the parameter part of a spec ("3" in "zstd:3"; empty
// when absent). Throws ArgumentError on a bad parameter.
using CodecFactory = std::function<std::shared_ptr<const Codec>(const std::string& parameters)>;

// Process-wide map from codec name to factory. Built-in codecs ("raw",
// "zstd", "shuffle+zstd") are registered on first use; users add their own
// with `register_codec`.
class CodecRegistry {
 public:
  static CodecRegistry& instance();

  void register_codec(const std::string& name, CodecFactory factory);
  bool contains(const std::string& name) const;
  std::vector<std::string> names() const;

  // "zstd:3" -> the zstd codec at level 3. Throws CodecError
  // (ErrorId::codec_unknown) naming the known codecs when the name is unknown.
  std::shared_ptr<const Codec> make(const std::string& spec) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, CodecFactory> factories_;
};

// Which codec encodes which tensor: a default spec, overridden per dtype and
// per tensor name. Name rules are glob patterns ('*' matches any run of
// characters, including '/'); the first matching name rule wins, then the
// dtype rule, then the default.
class CodecPolicy {
 public:
  CodecPolicy(std::string default_spec = "raw") : default_spec_(std::move(default_spec)) {}  // NOLINT: implicit from a spec

  CodecPolicy& for_dtype(DType dtype, std::string spec);
  CodecPolicy& for_names(std::string glob, std::string spec);

  const std::string& default_spec() const noexcept { return default_spec_; }
  const std::string& spec_for(const std::string& name, DType dtype) const;

 private:
  std::string default_spec_;
  std::map<DType, std::string> by_dtype_;
  std::vector<std::pair<std::string, std::string>> by_name_;
};

}  // namespace ckpt

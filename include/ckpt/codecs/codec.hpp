#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/detail/text.hpp"
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

namespace detail {

// The error a codec throws on corrupt input; callers that know the file and
// tensor rethrow it with their names (see detail/format/chunked.hpp).
inline CodecError decode_error(const std::string& what) { return CodecError(ErrorId::codec_decode, "", "", what); }

// Codecs without parameters refuse "name:anything" rather than ignore it.
inline void require_no_parameters(const std::string& codec_name, const std::string& parameters) {
  if (!parameters.empty()) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        join({"codec '", codec_name, "' takes no parameters, found '", parameters, "'"}));
  }
}

}  // namespace detail

}  // namespace ckpt

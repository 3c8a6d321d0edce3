#pragma once

#include <cstddef>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
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

namespace detail {

// The error a codec throws on corrupt input; callers that know the file and
// tensor rethrow it with their names (see detail/chunked.hpp).
inline CodecError decode_error(const std::string& what) { return CodecError(ErrorId::codec_decode, "", "", what); }

// Codecs without parameters refuse "name:anything" rather than ignore it.
inline void require_no_parameters(const std::string& codec_name, const std::string& parameters) {
  if (!parameters.empty()) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "codec '" + codec_name + "' takes no parameters, found '" + parameters + "'");
  }
}

}  // namespace detail

// Stores bytes unchanged. The writer keeps "raw" tensors as plain safetensors
// tensors and never calls it; it exists so every spec names a real codec.
class RawCodec final : public Codec {
 public:
  std::string name() const override { return "raw"; }

  void encode(const std::byte* data, std::size_t size, std::size_t /*element_size*/,
              std::vector<std::byte>& out) const override {
    // resize + memcpy rather than insert: GCC 12 -O3 warns (wrongly) about insert here.
    const std::size_t start = out.size();
    out.resize(start + size);
    if (size != 0) std::memcpy(out.data() + start, data, size);
  }

  void decode(const std::byte* data, std::size_t size, std::size_t /*element_size*/, std::byte* out,
              std::size_t out_size) const override {
    if (size != out_size) {
      throw detail::decode_error("raw: " + std::to_string(size) + " bytes stored, expected " +
                                 std::to_string(out_size));
    }
    if (size != 0) std::memcpy(out, data, size);
  }
};

// Process-wide map from codec name to factory. Built-in codecs ("raw",
// "zstd", "shuffle+zstd") are registered on first use; users add their own
// with `register_codec`.
class CodecRegistry {
 public:
  static CodecRegistry& instance() {
    static CodecRegistry registry;
    return registry;
  }

  // Adds a codec, or replaces the factory registered under `name`. Throws
  // ArgumentError for an empty name or one containing ':' or a NUL byte.
  void register_codec(const std::string& name, CodecFactory factory) {
    if (name.empty() || name.find_first_of(std::string(":\0", 2)) != std::string::npos) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          "codec name '" + name + "' must be non-empty and contain no ':' or NUL");
    }
    if (!factory) {
      throw ArgumentError(ErrorId::argument_invalid, "", "", "codec '" + name + "' registered without a factory");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    factories_[name] = std::move(factory);
  }

  bool contains(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return factories_.count(name) != 0;
  }

  // Sorted.
  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> result;
    for (const auto& entry : factories_) result.push_back(entry.first);
    return result;
  }

  // "zstd:3" -> the zstd codec at level 3. Throws CodecError
  // (ErrorId::codec_unknown) naming the known codecs when the name is unknown.
  std::shared_ptr<const Codec> make(const std::string& spec) const {
    const std::size_t colon = spec.find(':');
    const std::string name = spec.substr(0, colon);
    const std::string parameters = colon == std::string::npos ? std::string() : spec.substr(colon + 1);
    CodecFactory factory;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const auto found = factories_.find(name);
      if (found != factories_.end()) factory = found->second;
    }
    if (!factory) {
      std::string known;
      for (const std::string& each : names()) known += (known.empty() ? "" : ", ") + each;
      throw CodecError(ErrorId::codec_unknown, "", "",
                       "unknown codec '" + name + "' (spec '" + spec + "'); known codecs: " + known);
    }
    // Outside the lock: a factory may itself consult the registry.
    std::shared_ptr<const Codec> codec = factory(parameters);
    if (!codec) throw CodecError(ErrorId::codec_unknown, "", "", "codec factory for '" + name + "' returned null");
    return codec;
  }

 private:
  CodecRegistry() {
    factories_["raw"] = [](const std::string& parameters) {
      detail::require_no_parameters("raw", parameters);
      return std::make_shared<const RawCodec>();
    };
  }

  mutable std::mutex mutex_;
  std::map<std::string, CodecFactory> factories_;
};

namespace detail {

// Shell-style match where '*' matches any run of characters (including '/')
// and '?' any one character. Linear backtracking to the last '*', so hostile
// patterns cannot make it exponential.
inline bool glob_match(const std::string& pattern, const std::string& text) {
  std::size_t p = 0, t = 0;
  std::size_t star = std::string::npos, star_text = 0;
  while (t < text.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == text[t])) {
      ++p;
      ++t;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      star_text = t;
    } else if (star != std::string::npos) {
      p = star + 1;
      t = ++star_text;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

}  // namespace detail

// Which codec encodes which tensor: a default spec, overridden per dtype and
// per tensor name. Name rules are glob patterns ('*' matches any run of
// characters, including '/'; '?' one character); the first matching name rule
// wins, then the dtype rule, then the default.
class CodecPolicy {
 public:
  // Implicit, so `options.codecs = "zstd";` reads naturally.
  CodecPolicy(std::string default_spec = "raw") : default_spec_(std::move(default_spec)) {}  // NOLINT
  CodecPolicy(const char* default_spec) : default_spec_(default_spec) {}                      // NOLINT

  // A later rule for the same dtype replaces the earlier one.
  CodecPolicy& for_dtype(DType dtype, std::string spec) {
    by_dtype_[dtype] = std::move(spec);
    return *this;
  }

  // Name rules are tried in the order they were added.
  CodecPolicy& for_names(std::string glob, std::string spec) {
    by_name_.emplace_back(std::move(glob), std::move(spec));
    return *this;
  }

  const std::string& default_spec() const noexcept { return default_spec_; }

  const std::string& spec_for(const std::string& name, DType dtype) const {
    for (const auto& rule : by_name_) {
      if (detail::glob_match(rule.first, name)) return rule.second;
    }
    const auto found = by_dtype_.find(dtype);
    return found != by_dtype_.end() ? found->second : default_spec_;
  }

 private:
  std::string default_spec_;
  std::map<DType, std::string> by_dtype_;
  std::vector<std::pair<std::string, std::string>> by_name_;
};

}  // namespace ckpt

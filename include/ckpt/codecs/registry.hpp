#pragma once

// The one place that registers ckpt's built-in codecs, and the only header
// that asks whether zstd is built in (CKPT_WITH_ZSTD, set by the ckpt::ckpt
// CMake target, which then links zstd).

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/codecs/raw.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

#if defined(CKPT_WITH_ZSTD)
#include "ckpt/codecs/zstd.hpp"
#endif

namespace ckpt {

// Process-wide map from codec name to factory. The built-in codecs ("raw",
// and with CKPT_WITH_ZSTD "zstd" and "shuffle+zstd") are registered when the
// registry is first used; users add their own with `register_codec`. The
// members are templates only so that programs that never save or load do
// not compile them (see "Compile time" in docs/architecture.md).
class CodecRegistry {
 public:
  template <class = void>
  static CodecRegistry& instance() {
    static CodecRegistry registry;
    return registry;
  }

  // Adds a codec, or replaces the factory registered under `name`. Throws
  // ArgumentError for an empty name or one containing ':' or a NUL byte.
  template <class = void>
  void register_codec(const std::string& name, CodecFactory factory) {
    if (name.empty() || name.find_first_of(std::string(":\0", 2)) != std::string::npos) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          detail::join({"codec name '", name, "' must be non-empty and contain no ':' or NUL"}));
    }
    if (!factory) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          detail::join({"codec '", name, "' registered without a factory"}));
    }
    std::lock_guard<std::mutex> lock(mutex_);
    factories_[name] = std::move(factory);
  }

  template <class = void>
  bool contains(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    return factories_.count(name) != 0;
  }

  // Sorted.
  template <class = void>
  std::vector<std::string> names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> result;
    for (const auto& entry : factories_) result.push_back(entry.first);
    return result;
  }

  // "zstd:3" -> the zstd codec at level 3. Throws CodecError
  // (ErrorId::codec_unknown) naming the known codecs when the name is unknown.
  template <class = void>
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
      for (const std::string& each : names()) known += detail::join({known.empty() ? "" : ", ", each});
      throw CodecError(ErrorId::codec_unknown, "", "",
                       detail::join({"unknown codec '", name, "' (spec '", spec, "'); known codecs: ", known}));
    }
    // Outside the lock: a factory may itself consult the registry.
    std::shared_ptr<const Codec> codec = factory(parameters);
    if (!codec)
      throw CodecError(ErrorId::codec_unknown, "", "", detail::join({"codec factory for '", name, "' returned null"}));
    return codec;
  }

 private:
  template <class = void>
  CodecRegistry() {
    factories_["raw"] = [](const std::string& parameters) {
      detail::require_no_parameters("raw", parameters);
      return std::make_shared<const RawCodec>();
    };
#if defined(CKPT_WITH_ZSTD)
    for (bool shuffle : {false, true}) {
      factories_[ZstdCodec::name_for(shuffle)] = [shuffle](const std::string& parameters) {
        return ZstdCodec::from_parameters(parameters, shuffle);
      };
    }
#endif
  }

  mutable std::mutex mutex_;
  std::map<std::string, CodecFactory> factories_;
};

}  // namespace ckpt

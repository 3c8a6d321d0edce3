#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/codec.hpp"

namespace ckpt_test {

// A user codec as docs/codecs.md shows it: XORs every byte with a key given
// in the spec ("xor:90"). The file records only the name "xor", so the key
// travels in the stream (its first byte) and any XorCodec decodes it.
class XorCodec final : public ckpt::Codec {
 public:
  explicit XorCodec(std::byte key) : key_(key) {}

  static std::shared_ptr<const ckpt::Codec> from_parameters(const std::string& parameters) {
    int key = 0x5a;
    if (!parameters.empty()) key = std::stoi(parameters);
    if (key < 0 || key > 255) {
      throw ckpt::ArgumentError(ckpt::ErrorId::argument_invalid, "", "", "xor: key must be 0..255");
    }
    return std::make_shared<const XorCodec>(static_cast<std::byte>(key));
  }

  std::string name() const override { return "xor"; }

  void encode(const std::byte* data, std::size_t size, std::size_t /*element_size*/,
              std::vector<std::byte>& out) const override {
    out.push_back(key_);
    for (std::size_t i = 0; i < size; ++i) out.push_back(data[i] ^ key_);
  }

  void decode(const std::byte* data, std::size_t size, std::size_t /*element_size*/, std::byte* out,
              std::size_t out_size) const override {
    if (size != out_size + 1) {
      throw ckpt::detail::decode_error("xor: expected " + std::to_string(out_size + 1) + " bytes, found " +
                                       std::to_string(size));
    }
    for (std::size_t i = 0; i < out_size; ++i) out[i] = data[i + 1] ^ data[0];
  }

 private:
  std::byte key_;
};

inline void register_xor_codec() { ckpt::CodecRegistry::instance().register_codec("xor", XorCodec::from_parameters); }

}  // namespace ckpt_test

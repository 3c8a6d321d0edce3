#include <ckpt/ckpt.hpp>
#include <cstring>
#include <memory>

#include "odr_units.hpp"

namespace odr_units {
namespace {

class IdentityCodec : public ckpt::Codec {
 public:
  std::string name() const override { return "odr-identity"; }
  void encode(const std::byte* data, std::size_t size, std::size_t, std::vector<std::byte>& out) const override {
    out.insert(out.end(), data, data + size);
  }
  void decode(const std::byte* data, std::size_t size, std::size_t, std::byte* out,
              std::size_t out_size) const override {
    if (size != out_size) {
      throw ckpt::CodecError(ckpt::ErrorId::codec_decode, "", "", "identity codec: size differs");
    }
    std::memcpy(out, data, size);
  }
};

}  // namespace

void register_identity_codec_in_a(const std::string& name) {
  ckpt::CodecRegistry::instance().register_codec(
      name, [](const std::string&) { return std::make_shared<const IdentityCodec>(); });
}

const void* registry_address_in_a() { return &ckpt::CodecRegistry::instance(); }

}  // namespace odr_units

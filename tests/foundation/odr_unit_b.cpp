#include <ckpt/ckpt.hpp>

#include "odr_units.hpp"

namespace odr_units {

bool registry_in_b_contains(const std::string& name) { return ckpt::CodecRegistry::instance().contains(name); }

std::string round_trip_in_b(const std::string& spec, const std::string& text) {
  auto codec = ckpt::CodecRegistry::instance().make(spec);
  const auto* bytes = reinterpret_cast<const std::byte*>(text.data());
  std::vector<std::byte> stored;
  codec->encode(bytes, text.size(), 1, stored);
  std::string decoded(text.size(), '\0');
  codec->decode(stored.data(), stored.size(), 1, reinterpret_cast<std::byte*>(decoded.data()), decoded.size());
  return decoded;
}

void throw_format_error_in_b(const std::string& file) {
  throw ckpt::FormatError(ckpt::ErrorId::format_truncated, file, "", "thrown in unit B");
}

const void* registry_address_in_b() { return &ckpt::CodecRegistry::instance(); }

}  // namespace odr_units

#pragma once

#include <string>

// Functions defined in two translation units that both include every
// non-optional public header (<ckpt/ckpt.hpp>). Linking them together fails
// on any header definition that is not inline; the tests check that what must
// be one per program really is.
namespace odr_units {

// Unit A: registers an identity codec under `name`.
void register_identity_codec_in_a(const std::string& name);
// Unit B: whether the registry seen from this unit knows `name`.
bool registry_in_b_contains(const std::string& name);
// Unit B: encodes and decodes `text` with the codec made from `spec`.
std::string round_trip_in_b(const std::string& spec, const std::string& text);
// Unit B: throws a ckpt::FormatError naming `file`.
[[noreturn]] void throw_format_error_in_b(const std::string& file);
// The registry's address as seen from each unit.
const void* registry_address_in_a();
const void* registry_address_in_b();

}  // namespace odr_units

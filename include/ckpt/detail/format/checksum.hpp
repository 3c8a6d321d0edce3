#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ckpt/detail/format/xxhash_dispatch.hpp"

namespace ckpt::detail {

// XXH3-64 with seed 0 over `size` bytes: the checksum of every stored byte
// range in a checkpoint (docs/format.md, "Checksums").
inline std::uint64_t xxh3(const void* data, std::size_t size) noexcept {
  return static_cast<std::uint64_t>(xxh3_64_dispatched(data, size));
}

// Incremental XXH3-64 (seed 0) for a checksum over several byte ranges.
class Xxh3Stream {
 public:
  Xxh3Stream() noexcept { XXH3_64bits_reset(&state_); }
  void update(const void* data, std::size_t size) noexcept { xxh3_64_update_dispatched(&state_, data, size); }
  std::uint64_t digest() const noexcept { return static_cast<std::uint64_t>(XXH3_64bits_digest(&state_)); }

 private:
  XXH3_state_t state_;
};

// Bytes small enough to stay in a core's cache (L2 on current CPUs) between
// two passes over them, e.g. copying then hashing, or feeding two checksums:
// a pass over a larger range evicts them, and memory, not the hash, bounds a
// second pass from memory.
inline constexpr std::size_t cache_resident_bytes = std::size_t(128) << 10;

inline constexpr std::size_t checksum_hex_digits = 16;

// The two lowercase hex digits of each byte value.
struct HexDigitPairs {
  char of[256][2] = {};
  constexpr HexDigitPairs() {
    constexpr char digits[] = "0123456789abcdef";
    for (int byte = 0; byte < 256; ++byte) {
      of[byte][0] = digits[byte >> 4];
      of[byte][1] = digits[byte & 0xF];
    }
  }
};

// Writes `value` as exactly 16 lowercase hexadecimal digits at `out`, a byte
// at a time: a header of 100,000 tensors prints 200,000 checksums or more,
// and a digit at a time cost twice the instructions.
inline void write_checksum_hex(std::uint64_t value, char* out) noexcept {
  static constexpr HexDigitPairs pairs;
  for (std::size_t i = checksum_hex_digits; i > 0; i -= 2, value >>= 8) {
    out[i - 2] = pairs.of[value & 0xFF][0];
    out[i - 1] = pairs.of[value & 0xFF][1];
  }
}

// Checksums are written as exactly 16 lowercase hexadecimal digits.
inline std::string checksum_to_hex(std::uint64_t value) {
  std::string text(checksum_hex_digits, '0');
  write_checksum_hex(value, text.data());
  return text;
}

// The value of each lowercase hex digit; 16 for any other byte.
struct HexDigitValues {
  std::uint8_t of[256] = {};
  constexpr HexDigitValues() {
    for (int c = 0; c < 256; ++c) of[c] = 16;
    for (int d = 0; d < 10; ++d) of['0' + d] = static_cast<std::uint8_t>(d);
    for (int d = 0; d < 6; ++d) of['a' + d] = static_cast<std::uint8_t>(10 + d);
  }
};

// Inverse of checksum_to_hex; nullopt for anything but 16 lowercase hex
// digits. By table, without a branch per digit: digits and letters mix at
// random, so such branches are mispredicted about every other digit, and a
// header holds two checksums or more per tensor (perf of an open of 100,000
// tensors: 8% of its time with the branches).
inline std::optional<std::uint64_t> checksum_from_hex(std::string_view text) noexcept {
  static constexpr HexDigitValues digits;
  if (text.size() != checksum_hex_digits) return std::nullopt;
  std::uint64_t value = 0;
  unsigned invalid = 0;
  for (char c : text) {
    const unsigned digit = digits.of[static_cast<unsigned char>(c)];
    invalid |= digit & 16;
    value = (value << 4) | (digit & 15);
  }
  if (invalid != 0) return std::nullopt;
  return value;
}

}  // namespace ckpt::detail

#pragma once

// The content hash of incremental checkpoints (docs/format.md, section 8):
// XXH3-128 of a tensor's decoded bytes. 128 bits because a save trusts it
// alone to decide that a tensor is unchanged and need not be written again:
// unlike a checksum, which only has to catch damage, a collision here would
// silently restore wrong weights.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "ckpt/detail/format/checksum.hpp"

namespace ckpt::detail {

struct ContentHash {
  std::uint64_t high = 0;
  std::uint64_t low = 0;
  friend bool operator==(const ContentHash& a, const ContentHash& b) noexcept {
    return a.high == b.high && a.low == b.low;
  }
  friend bool operator!=(const ContentHash& a, const ContentHash& b) noexcept { return !(a == b); }
  friend bool operator<(const ContentHash& a, const ContentHash& b) noexcept {
    return a.high != b.high ? a.high < b.high : a.low < b.low;
  }
};

inline ContentHash content_hash(const void* data, std::size_t size) noexcept {
  const XXH128_hash_t hash = xxh3_128_dispatched(data, size);
  return {hash.high64, hash.low64};
}

// XXH3-128 fed in pieces: after updates with consecutive pieces of some
// bytes, the same hash as content_hash of them all. A save hashes a tensor's
// first block apart from its rest this way (write/content_hashing.hpp)
// without reading the block twice.
class ContentHashStream {
 public:
  ContentHashStream() noexcept { XXH3_128bits_reset(&state_); }
  // XXH3_128bits_update is XXH3_64bits_update: the two differ in the digest only.
  void update(const void* data, std::size_t size) noexcept { xxh3_64_update_dispatched(&state_, data, size); }
  ContentHash digest() const noexcept {
    const XXH128_hash_t hash = XXH3_128bits_digest(&state_);
    return {hash.high64, hash.low64};
  }

 private:
  XXH3_state_t state_;
};

// Written as 32 lowercase hex digits, the high 64 bits first (as xxhsum -H2
// prints it).
inline std::string content_hash_to_hex(const ContentHash& hash) {
  return checksum_to_hex(hash.high) + checksum_to_hex(hash.low);
}

inline std::optional<ContentHash> content_hash_from_hex(std::string_view text) noexcept {
  if (text.size() != 2 * checksum_hex_digits) return std::nullopt;
  const auto high = checksum_from_hex(text.substr(0, checksum_hex_digits));
  const auto low = checksum_from_hex(text.substr(checksum_hex_digits));
  if (!high || !low) return std::nullopt;
  return ContentHash{*high, *low};
}

}  // namespace ckpt::detail

// The checksums and content hashes a save writes are XXH3's, bit for bit,
// whichever loop computes them (format/xxhash_dispatch.hpp picks AVX2 at run
// time where the CPU has it, else its SSE2 loop): compared with xxHash's own
// functions (on x86-64 its scalar loop, as that header compiles it), over lengths on both sides of XXH3's short
// and long paths and of its 1 KiB stripe blocks, at unaligned addresses, and
// streamed in uneven pieces.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/content_hash.hpp"

namespace {

std::vector<unsigned char> random_bytes(std::size_t size) {
  std::mt19937_64 random(15);
  std::vector<unsigned char> bytes(size);
  for (unsigned char& byte : bytes) byte = static_cast<unsigned char>(random());
  return bytes;
}

// Lengths around every boundary of XXH3's paths, then a few large ones.
std::vector<std::size_t> lengths() {
  std::vector<std::size_t> sizes;
  for (std::size_t size = 0; size <= 2100; ++size) sizes.push_back(size);
  for (std::size_t size : {4095u, 4096u, 65537u, 1048576u, 3000001u}) sizes.push_back(size);
  return sizes;
}

TEST(HashDispatch, OneShotHashesEqualXxHashs) {
  const std::vector<unsigned char> bytes = random_bytes(3000001 + 64);
  for (std::size_t size : lengths()) {
    for (std::size_t offset : {0u, 1u, 13u}) {
      const unsigned char* data = bytes.data() + offset;
      ASSERT_EQ(ckpt::detail::xxh3(data, size), XXH3_64bits(data, size)) << size << " bytes at +" << offset;
      const XXH128_hash_t expected = XXH3_128bits(data, size);
      const ckpt::detail::ContentHash hash = ckpt::detail::content_hash(data, size);
      ASSERT_EQ(hash.high, expected.high64) << size << " bytes at +" << offset;
      ASSERT_EQ(hash.low, expected.low64) << size << " bytes at +" << offset;
    }
  }
}

TEST(HashDispatch, StreamedChecksumEqualsTheOneShotOne) {
  const std::vector<unsigned char> bytes = random_bytes(3000001);
  std::mt19937_64 random(16);
  for (std::size_t size : {0u, 300u, 5000u, 1048576u, 3000001u}) {
    ckpt::detail::Xxh3Stream stream;
    ckpt::detail::ContentHashStream content;
    for (std::size_t at = 0; at < size;) {
      const std::size_t piece = std::min<std::size_t>(size - at, random() % 200000);
      stream.update(bytes.data() + at, piece);
      content.update(bytes.data() + at, piece);
      at += piece;
    }
    EXPECT_EQ(stream.digest(), XXH3_64bits(bytes.data(), size)) << size << " bytes";
    // A save hashes a tensor's first block apart from the rest
    // (write/content_hashing.hpp): the content hash must not change.
    const XXH128_hash_t expected = XXH3_128bits(bytes.data(), size);
    EXPECT_EQ(content.digest().high, expected.high64) << size << " bytes";
    EXPECT_EQ(content.digest().low, expected.low64) << size << " bytes";
  }
}

#ifdef CKPT_XXH3_SSE2
// The SSE2 loops, which the tests above do not reach on a CPU with AVX2.
TEST(HashDispatch, Sse2LoopsEqualXxHashs) {
  const std::vector<unsigned char> bytes = random_bytes(3000001 + 64);
  for (std::size_t size : lengths()) {
    if (size <= XXH3_MIDSIZE_MAX) continue;  // the short paths have no loop
    for (std::size_t offset : {0u, 1u, 13u}) {
      const unsigned char* data = bytes.data() + offset;
      ASSERT_EQ(ckpt::detail::xxh3_64_long_sse2(data, size, 0, nullptr, 0), XXH3_64bits(data, size))
          << size << " bytes at +" << offset;
      const XXH128_hash_t expected = XXH3_128bits(data, size);
      const XXH128_hash_t hash = ckpt::detail::xxh3_128_long_sse2(data, size, 0, nullptr, 0);
      ASSERT_EQ(hash.high64, expected.high64) << size << " bytes at +" << offset;
      ASSERT_EQ(hash.low64, expected.low64) << size << " bytes at +" << offset;
    }
  }
  std::mt19937_64 random(17);
  for (std::size_t size : {5000u, 1048576u, 3000001u}) {
    XXH3_state_t state;
    XXH3_64bits_reset(&state);
    for (std::size_t at = 0; at < size;) {
      const std::size_t piece = std::min<std::size_t>(size - at, random() % 200000);
      ckpt::detail::xxh3_update_sse2(&state, bytes.data() + at, piece);
      at += piece;
    }
    EXPECT_EQ(XXH3_64bits_digest(&state), XXH3_64bits(bytes.data(), size)) << size << " bytes";
    const XXH128_hash_t expected = XXH3_128bits(bytes.data(), size);
    EXPECT_EQ(XXH3_128bits_digest(&state).high64, expected.high64) << size << " bytes";
    EXPECT_EQ(XXH3_128bits_digest(&state).low64, expected.low64) << size << " bytes";
  }
}
#endif

}  // namespace

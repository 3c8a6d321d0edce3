#include "ckpt/detail/codec/shuffle.hpp"

#include <gtest/gtest.h>

#include <vector>

#include "test_support.hpp"

namespace {

// The definition, byte by byte: byte k of element e goes to plane k.
std::vector<std::byte> reference_shuffle(const std::vector<std::byte>& in, std::size_t width) {
  std::vector<std::byte> out(in);
  const std::size_t count = in.size() / width;
  for (std::size_t e = 0; e < count; ++e) {
    for (std::size_t k = 0; k < width; ++k) out[k * count + e] = in[e * width + k];
  }
  return out;
}

TEST(Shuffle, MatchesDefinitionAndInvertsForEveryWidthAndOddSizes) {
  // Sizes around the 16-element blocks of the vector path and with partial elements.
  for (std::size_t width : {1, 2, 3, 4, 5, 8}) {
    for (std::size_t size : {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 1000, 4099}) {
      const auto input = ckpt_test::tensor_like_bytes(size, static_cast<std::uint32_t>(size + width));
      std::vector<std::byte> shuffled(size), restored(size);
      ckpt::detail::shuffle_bytes(input.data(), shuffled.data(), size, width);
      EXPECT_EQ(shuffled, reference_shuffle(input, width)) << "width " << width << " size " << size;
      ckpt::detail::unshuffle_bytes(shuffled.data(), restored.data(), size, width);
      EXPECT_EQ(restored, input) << "width " << width << " size " << size;
    }
  }
}

TEST(Shuffle, GroupsFloatExponentBytesTogether) {
  const std::vector<float> values = {1.0f, 2.0f, -1.0f, 0.5f};
  std::vector<std::byte> shuffled(sizeof(float) * values.size());
  ckpt::detail::shuffle_bytes(reinterpret_cast<const std::byte*>(values.data()), shuffled.data(), shuffled.size(), 4);
  // Little-endian: the last plane holds sign and high exponent bits.
  EXPECT_EQ(shuffled[12], std::byte{0x3f});
  EXPECT_EQ(shuffled[13], std::byte{0x40});
  EXPECT_EQ(shuffled[14], std::byte{0xbf});
  EXPECT_EQ(shuffled[15], std::byte{0x3f});
}

}  // namespace

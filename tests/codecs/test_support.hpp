#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "ckpt/error.hpp"
#include "support/expect_error.hpp"

namespace ckpt_test {

// Bytes that look like a tensor: a smooth signal in the high bytes (so codecs
// compress it) and noise in the low ones, different for every seed.
inline std::vector<std::byte> tensor_like_bytes(std::size_t size, std::uint32_t seed = 1) {
  std::vector<std::byte> bytes(size);
  std::uint32_t state = seed * 2654435761u + 1;
  for (std::size_t i = 0; i < size; ++i) {
    state = state * 1664525u + 1013904223u;
    bytes[i] = static_cast<std::byte>(i % 4 == 3 ? (i / 512) & 0x3f : state >> 24);
  }
  return bytes;
}

using ckpt::test::expect_error;

}  // namespace ckpt_test

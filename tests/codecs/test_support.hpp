#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "ckpt/error.hpp"

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

// Runs `action`, expects an exception of class E with `id`, whose message
// contains every one of `fragments`.
template <class E>
void expect_error(const std::function<void()>& action, ckpt::ErrorId id, std::initializer_list<std::string> fragments) {
  try {
    action();
    ADD_FAILURE() << "expected an exception with id " << static_cast<int>(id);
  } catch (const E& error) {
    EXPECT_EQ(error.id(), id) << error.what();
    for (const std::string& fragment : fragments) {
      EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
          << "message '" << error.what() << "' lacks '" << fragment << "'";
    }
  }
}

}  // namespace ckpt_test

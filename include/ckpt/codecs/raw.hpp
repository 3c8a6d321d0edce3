#pragma once

#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/detail/text.hpp"

namespace ckpt {

// Stores bytes unchanged. The writer keeps "raw" tensors as plain safetensors
// tensors and never calls it; it exists so every spec names a real codec.
class RawCodec final : public Codec {
 public:
  std::string name() const override { return "raw"; }

  void encode(const std::byte* data, std::size_t size, std::size_t /*element_size*/,
              std::vector<std::byte>& out) const override {
    // resize + memcpy rather than insert: GCC 12 -O3 warns (wrongly) about insert here.
    const std::size_t start = out.size();
    out.resize(start + size);
    if (size != 0) std::memcpy(out.data() + start, data, size);
  }

  void decode(const std::byte* data, std::size_t size, std::size_t /*element_size*/, std::byte* out,
              std::size_t out_size) const override {
    if (size != out_size) {
      throw detail::decode_error(detail::join({"raw: ", size, " bytes stored, expected ", out_size}));
    }
    if (size != 0) std::memcpy(out, data, size);
  }
};

}  // namespace ckpt

#pragma once

// The bytes ranks send each other during a distributed save or load: little
// integers and strings back to back. The ranks run the same build, so the
// encoding needs no versioning; it only has to be compact (the per-piece
// descriptions of a large model cross the network at every save) and cheap
// to decode.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

class WireWriter {
 public:
  WireWriter& u64(std::uint64_t value) {
    // Variable length: seven bits a byte, high bit set while more follow.
    while (value >= 0x80) {
      bytes_.push_back(static_cast<char>((value & 0x7F) | 0x80));
      value >>= 7;
    }
    bytes_.push_back(static_cast<char>(value));
    return *this;
  }
  WireWriter& text(std::string_view value) {
    u64(value.size());
    bytes_.append(value.data(), value.size());
    return *this;
  }
  WireWriter& shape(const Shape& shape) {
    u64(shape.size());
    for (std::uint64_t extent : shape) u64(extent);
    return *this;
  }

  const std::string& bytes() const noexcept { return bytes_; }
  std::string take() && { return std::move(bytes_); }

 private:
  std::string bytes_;
};

// Reads what a WireWriter wrote. A message that ends early or runs long is a
// bug (both sides are this code), reported as StateError state_rank_failed.
class WireReader {
 public:
  explicit WireReader(std::string_view bytes) : bytes_(bytes) {}

  std::uint64_t u64() {
    std::uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (position_ == bytes_.size()) malformed();
      const auto byte = static_cast<std::uint8_t>(bytes_[position_++]);
      value |= std::uint64_t(byte & 0x7F) << shift;
      if ((byte & 0x80) == 0) return value;
    }
    malformed();
  }
  std::string text() {
    const std::uint64_t size = u64();
    if (size > bytes_.size() - position_) malformed();
    std::string value(bytes_.substr(position_, size));
    position_ += size;
    return value;
  }
  Shape shape() {
    const std::uint64_t rank = u64();
    if (rank > bytes_.size() - position_) malformed();  // each extent takes at least one byte
    Shape shape(rank);
    for (std::uint64_t& extent : shape) extent = u64();
    return shape;
  }
  bool at_end() const noexcept { return position_ == bytes_.size(); }
  void expect_end() const {
    if (!at_end()) malformed();
  }

 private:
  [[noreturn]] void malformed() const {
    throw StateError(ErrorId::state_rank_failed, "", "",
                     join({"a message between ranks is malformed (", bytes_.size(),
                           " bytes); expected every rank to run the same build of ckpt"}));
  }

  std::string_view bytes_;
  std::size_t position_ = 0;
};

}  // namespace ckpt::detail

#pragma once

#include <cstddef>
#include <vector>

namespace ckpt::detail {

// Lends a thread's reusable buffer for one chunk. Fresh memory costs a page
// fault per 4 KiB, which on a virtual machine is as much as zstd's own work on
// those bytes, so each thread keeps its buffer from chunk to chunk; a buffer
// grown beyond `max_kept_bytes` (chunks far above the 4 MiB default) is
// released when the loan ends so it does not stay pinned for the thread's life.
class ScratchLoan {
 public:
  static constexpr std::size_t max_kept_bytes = std::size_t(64) << 20;

  explicit ScratchLoan(std::vector<std::byte>& buffer) : buffer_(buffer) {}
  ScratchLoan(const ScratchLoan&) = delete;
  ScratchLoan& operator=(const ScratchLoan&) = delete;
  ~ScratchLoan() {
    if (buffer_.capacity() > max_kept_bytes) std::vector<std::byte>().swap(buffer_);
  }

  // The buffer, emptied, for appending to.
  std::vector<std::byte>& emptied() noexcept {
    buffer_.clear();
    return buffer_;
  }

  // At least `size` bytes of unspecified content: growing only, so reuse
  // does not pay for zeroing.
  std::byte* data(std::size_t size) {
    if (buffer_.size() < size) buffer_.resize(size);
    return buffer_.data();
  }

 private:
  std::vector<std::byte>& buffer_;
};

}  // namespace ckpt::detail

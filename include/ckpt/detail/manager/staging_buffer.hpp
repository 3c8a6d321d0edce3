#pragma once

// The copy an asynchronous save takes of the training state, so training can
// change its tensors while the file is written. The buffer is kept and reused
// by the next save: after the first save, staging allocates nothing.

#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "ckpt/writer.hpp"

namespace ckpt::detail {

class StagingBuffer {
 public:
  // Copies the bytes of every tensor into the buffer and returns views of the
  // copies. The views stay valid until the next call.
  std::vector<NamedTensor> stage(const std::vector<NamedTensor>& tensors) {
    std::size_t total = 0;
    for (const NamedTensor& tensor : tensors) total = aligned(total) + tensor.view.nbytes();
    if (total > capacity_) {
      bytes_.reset(new std::byte[total]);
      capacity_ = total;
    }
    std::vector<NamedTensor> staged;
    staged.reserve(tensors.size());
    std::size_t offset = 0;
    for (const NamedTensor& tensor : tensors) {
      offset = aligned(offset);
      const std::size_t size = tensor.view.nbytes();
      if (size != 0) std::memcpy(bytes_.get() + offset, tensor.view.data(), size);
      staged.push_back(NamedTensor{tensor.name, TensorView(tensor.view.dtype(), tensor.view.shape(), bytes_.get() + offset)});
      offset += size;
    }
    return staged;
  }

  std::size_t capacity() const noexcept { return capacity_; }

 private:
  // Cache-line alignment keeps every element naturally aligned for any dtype.
  static std::size_t aligned(std::size_t offset) { return (offset + 63) & ~std::size_t(63); }

  std::unique_ptr<std::byte[]> bytes_;
  std::size_t capacity_ = 0;
};

}  // namespace ckpt::detail

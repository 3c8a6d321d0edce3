#pragma once

// The copy an asynchronous save takes of the training state, so training can
// change its tensors while the file is written. The buffer is kept and reused
// by the next save: after the first save, staging allocates nothing.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <vector>

#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/writer.hpp"

namespace ckpt::detail {

class StagingBuffer {
 public:
  // Copies the bytes of every tensor into the buffer and returns views of the
  // copies. The views stay valid until the next call. The copy runs on the
  // worker threads (it is all the training loop waits for), in pieces so
  // that one large tensor is shared among them too. (A template only so that
  // programs that never stage do not compile the copy.)
  template <class = void>
  std::vector<NamedTensor> stage(const std::vector<NamedTensor>& tensors, unsigned threads = 0) {
    std::size_t total = 0;
    for (const NamedTensor& tensor : tensors) total = aligned(total) + tensor.view.nbytes();
    if (total > capacity_) {
      bytes_.reset(new std::byte[total]);
      capacity_ = total;
    }
    std::vector<NamedTensor> staged;
    staged.reserve(tensors.size());
    std::vector<CopyPiece> pieces;
    std::size_t offset = 0;
    for (const NamedTensor& tensor : tensors) {
      offset = aligned(offset);
      const std::size_t size = tensor.view.nbytes();
      for (std::size_t done = 0; done < size; done += copy_piece_bytes) {
        pieces.push_back(
            {tensor.view.data() + done, bytes_.get() + offset + done, std::min(copy_piece_bytes, size - done)});
      }
      staged.push_back(
          NamedTensor{tensor.name, TensorView(tensor.view.dtype(), tensor.view.shape(), bytes_.get() + offset)});
      offset += size;
    }
    parallel_for(pieces.size(), threads,
                 [&pieces](std::size_t i) { std::memcpy(pieces[i].to, pieces[i].from, pieces[i].size); });
    return staged;
  }

  std::size_t capacity() const noexcept { return capacity_; }

 private:
  static constexpr std::size_t copy_piece_bytes = std::size_t(4) << 20;

  struct CopyPiece {
    const std::byte* from;
    std::byte* to;
    std::size_t size;
  };

  // Cache-line alignment keeps every element naturally aligned for any dtype.
  static std::size_t aligned(std::size_t offset) { return (offset + 63) & ~std::size_t(63); }

  std::unique_ptr<std::byte[]> bytes_;
  std::size_t capacity_ = 0;
};

}  // namespace ckpt::detail

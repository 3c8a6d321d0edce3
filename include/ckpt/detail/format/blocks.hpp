#pragma once

// Block checksums of format version 2 (docs/format.md, section 4): where a
// tensor's blocks lie in its stored bytes, which blocks a stored byte range
// touches, and verifying each block once per open file. A verified read of
// a range, a chunk or a whole tensor thus hashes only the blocks it touches.

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunk_table.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// Stored bytes [begin, end) of a tensor, relative to its first stored byte.
struct StoredSpan {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// Blocks a v2 record has: ceil(stored / block_bytes) for a raw tensor, one
// per chunk for an encoded one (what the header parser checks `blocks`
// against).
inline std::uint64_t expected_block_count(const TensorRecord& record) {
  if (record.encoded()) return record.chunk_sizes.size();
  return record.block_bytes == 0 ? 0 : chunk_count(record.stored_bytes(), record.block_bytes);
}

inline StoredSpan block_span(const TensorRecord& record, std::size_t block) {
  if (record.encoded()) return {record.block_starts[block], record.block_starts[block + 1]};
  const std::uint64_t begin = block * record.block_bytes;
  return {begin, std::min(begin + record.block_bytes, record.stored_bytes())};
}

// The blocks [first, last) that hold any of the stored bytes [begin, end).
template <class = void>
std::pair<std::size_t, std::size_t> blocks_touching(const TensorRecord& record, std::uint64_t begin,
                                                    std::uint64_t end) {
  if (begin >= end) return {0, 0};
  if (!record.encoded()) return {begin / record.block_bytes, (end - 1) / record.block_bytes + 1};
  const auto& starts = record.block_starts;
  // starts[i] <= begin < starts[i + 1]; empty chunks cannot exist (each holds >= 1 stored byte).
  const auto first = std::upper_bound(starts.begin(), starts.end(), begin) - starts.begin() - 1;
  const auto last = std::lower_bound(starts.begin(), starts.end(), end) - starts.begin();
  return {static_cast<std::size_t>(first), static_cast<std::size_t>(last)};
}

// Which blocks of an open file were verified: each block is hashed on its
// first verified read and not again, like the whole-tensor check of format
// version 1. Safe from several threads: two threads racing on one block
// both hash it, harmlessly.
template <class = void>
class BlockVerifier {
 public:
  BlockVerifier() = default;
  BlockVerifier(const BlockVerifier&) = delete;  // moved, never copied, as Reader
  BlockVerifier& operator=(const BlockVerifier&) = delete;
  BlockVerifier(BlockVerifier&&) = default;
  BlockVerifier& operator=(BlockVerifier&&) = default;
  explicit BlockVerifier(const std::vector<TensorRecord>& records) : first_block_(records.size() + 1, 0) {
    for (std::size_t i = 0; i < records.size(); ++i)
      first_block_[i + 1] = first_block_[i] + records[i].block_xxh3.size();
    verified_ = std::vector<std::atomic<bool>>(first_block_.back());
    for (std::size_t i = 0; i < first_block_.back(); ++i) verified_[i].store(false, std::memory_order_relaxed);
  }

  bool verified(std::size_t index, std::size_t block) const {
    return verified_[first_block_[index] + block].load(std::memory_order_acquire);
  }

  // Verifies block `block` of tensor `index` (`record`), whose stored bytes
  // start at `stored`, unless it was already. Throws IntegrityError
  // integrity_tensor_checksum naming the file, tensor, block and its range.
  void verify(std::size_t index, const TensorRecord& record, std::size_t block, const std::byte* stored,
              const std::string& file) const {
    if (verified(index, block)) return;
    const StoredSpan span = block_span(record, block);
    check(index, record, block, xxh3(stored + span.begin, span.end - span.begin), file);
  }

  // Verifies block `block` of tensor `index` by its checksum `found`,
  // computed by the caller (who may hash while copying).
  void check(std::size_t index, const TensorRecord& record, std::size_t block, std::uint64_t found,
             const std::string& file) const {
    if (found != record.block_xxh3[block]) {
      const StoredSpan span = block_span(record, block);
      throw IntegrityError(ErrorId::integrity_tensor_checksum, file, record.name,
                           join({"checksum mismatch in block ", block, " of ", record.block_xxh3.size(),
                                 " (stored bytes [", span.begin, ", ", span.end, ")): expected xxh3 ",
                                 checksum_to_hex(record.block_xxh3[block]), ", found ", checksum_to_hex(found)}));
    }
    verified_[first_block_[index] + block].store(true, std::memory_order_release);
  }

  // Verifies the blocks of tensor `index` holding stored bytes [begin, end),
  // on up to `threads` threads when there are several.
  void verify_range(std::size_t index, const TensorRecord& record, std::uint64_t begin, std::uint64_t end,
                    const std::byte* stored, const std::string& file, unsigned threads) const {
    const std::pair<std::size_t, std::size_t> touched = blocks_touching(record, begin, end);
    parallel_for(touched.second - touched.first, threads,
                 [&](std::size_t i) { verify(index, record, touched.first + i, stored, file); });
  }

 private:
  std::vector<std::size_t> first_block_{0};  // per record: index of its first block in verified_; last: the total
  mutable std::vector<std::atomic<bool>> verified_;
};

}  // namespace ckpt::detail

#pragma once

// The content hashes of an incremental save computed on the pool's workers
// while the calling thread writes (docs/format.md, section 8). The first
// block of the tensors that need it is hashed first, for all of them: a
// tensor whose first block differs from that of every content of its dtype
// and shape the parent holds has changed, and can be written while the rest
// of the state is still being hashed. The rest of each tensor continues the
// same XXH3-128 stream, so no byte is read twice for the content hash; and
// for a raw tensor written early, the same pass computes the checksums of
// its blocks and of its whole bytes (the records' block_xxh3, stored_xxh3),
// so the save reads its bytes once to hash and once to write.
// A template only so that programs that never save do not compile it.

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/content_hash.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/order.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

template <class = void>
class ContentHashing {
 public:
  // first_block_bytes[i]: the size of tensors[i]'s first block when its
  // XXH3-64 is wanted early (smaller than the tensor), or 0.
  ContentHashing(const std::vector<NamedTensor>& tensors, const std::vector<std::size_t>& first_block_bytes)
      : tensors_(tensors), first_block_bytes_(first_block_bytes), stream_of_(tensors.size(), 0) {
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (first_block_bytes[i] == 0) continue;
      stream_of_[i] = first_blocks_.size();
      first_blocks_.push_back(i);
    }
    streams_.resize(first_blocks_.size());
    block_streams_.resize(first_blocks_.size());
    // The largest rest first: one started last would leave the other
    // threads idle while it finishes.
    rests_ = stable_order(tensors.size(), [&](std::size_t a, std::size_t b) { return rest_bytes(a) > rest_bytes(b); });
    hashes_.resize(tensors.size());
    checksummed_.resize(tensors.size(), nullptr);
  }

  ContentHashing(const ContentHashing&) = delete;
  ContentHashing& operator=(const ContentHashing&) = delete;

  // Hashes every tensor on up to `threads` threads (0 = one per core) while
  // the calling thread runs `caller_work` (which may call
  // wait_for_first_blocks, then start_rests), then helps. A failure of
  // `caller_work` stops the hashing and is rethrown.
  template <class CallerWork>
  void run(unsigned threads, CallerWork&& caller_work) {
    const std::thread::id caller = std::this_thread::get_id();
    bool caller_done = false;  // touched by the caller only
    const auto caller_part = [&] {
      try {
        caller_work();
      } catch (...) {
        stop();
        throw;
      }
      start_rests({});  // if caller_work did not
      work(false);
      caller_done = true;
    };
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    const unsigned wanted = std::min(threads == 0 ? cores : threads, cores);
    if (wanted > 1) {
      // The caller takes its part in whichever turn the pool gives it (the
      // workers hash only), or after, if the workers took every turn.
      ThreadPool<>::shared().run(wanted, wanted - 1, [&](std::size_t) {
        if (std::this_thread::get_id() == caller && !caller_done) {
          caller_part();
        } else {
          work(false);
        }
      });
    }
    if (!caller_done) caller_part();
  }

  // The caller hashes first blocks until every one is hashed.
  void wait_for_first_blocks() { work(true); }

  // After wait_for_first_blocks: the XXH3-64 of tensors[i]'s first block.
  std::uint64_t first_block_xxh3(std::size_t i) const { return block_streams_[stream_of_[i]].digest(); }

  // Lets the rests be hashed (once; later calls do nothing). checksummed[i],
  // when set, is the record of a raw tensor whose checksums the rest's pass
  // fills in: its blocks of record->block_bytes, the size of its first block
  // if it has one.
  void start_rests(std::vector<TensorRecord*> checksummed) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (rests_started_) return;
    if (!checksummed.empty()) checksummed_ = std::move(checksummed);
    rests_started_ = true;
    changed_.notify_all();
  }

  // After run: the content hash of each tensor.
  const std::vector<ContentHash>& hashes() const { return hashes_; }

 private:
  std::size_t rest_bytes(std::size_t i) const { return tensors_[i].view.nbytes() - first_block_bytes_[i]; }

  void stop() {
    std::lock_guard<std::mutex> lock(mutex_);
    stopped_ = true;
    changed_.notify_all();
  }

  // Takes jobs until none is left (or, with `first_blocks_only`, until every
  // first block is hashed), then waits for those others are doing. The rests
  // start once every first block is hashed and the caller said which to
  // checksum: a rest continues its block's streams.
  void work(bool first_blocks_only) {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopped_) {
      if (next_first_block_ < first_blocks_.size()) {
        const std::size_t k = next_first_block_++;
        lock.unlock();
        hash_first_block(k);
        lock.lock();
        if (++first_blocks_done_ == first_blocks_.size()) changed_.notify_all();
      } else if (first_blocks_done_ < first_blocks_.size()) {
        changed_.wait(lock);
      } else if (first_blocks_only) {
        return;
      } else if (!rests_started_) {
        changed_.wait(lock);
      } else if (next_rest_ < rests_.size()) {
        const std::size_t i = rests_[next_rest_++];
        lock.unlock();
        hash_rest(i);
        lock.lock();
        if (++rests_done_ == rests_.size()) changed_.notify_all();
      } else if (rests_done_ < rests_.size()) {
        changed_.wait(lock);
      } else {
        return;
      }
    }
  }

  // The first block feeds both its checksum and the content stream, piece by
  // piece while the piece is in the core's cache.
  void hash_first_block(std::size_t k) {
    const std::byte* data = tensors_[first_blocks_[k]].view.data();
    const std::size_t size = first_block_bytes_[first_blocks_[k]];
    for (std::size_t at = 0; at < size; at += cache_resident_bytes) {
      const std::size_t piece = std::min(cache_resident_bytes, size - at);
      block_streams_[k].update(data + at, piece);
      streams_[k].update(data + at, piece);
    }
  }

  void hash_rest(std::size_t i) {
    const TensorView& view = tensors_[i].view;
    const std::size_t first = first_block_bytes_[i];
    if (checksummed_[i] != nullptr) {
      hash_and_checksum(i, *checksummed_[i]);
    } else if (first == 0) {
      hashes_[i] = content_hash(view.data(), view.nbytes());
    } else {
      ContentHashStream& stream = streams_[stream_of_[i]];
      stream.update(view.data() + first, view.nbytes() - first);
      hashes_[i] = stream.digest();
    }
  }

  // The content hash and the record's checksums in one pass, each piece
  // feeding the three streams while it is in the core's cache (as
  // SavePipeline::hash_tensor does for the checksums). The first block's
  // stream, if any, is the whole bytes' stream so far.
  void hash_and_checksum(std::size_t i, TensorRecord& record) {
    const TensorView& view = tensors_[i].view;
    const bool has_first = first_block_bytes_[i] != 0;
    ContentHashStream fresh_content;
    Xxh3Stream fresh_whole;
    ContentHashStream& content = has_first ? streams_[stream_of_[i]] : fresh_content;
    Xxh3Stream& whole = has_first ? block_streams_[stream_of_[i]] : fresh_whole;
    std::size_t b = 0;
    if (has_first) record.block_xxh3[b++] = whole.digest();
    for (; b < record.block_xxh3.size(); ++b) {
      const std::size_t begin = b * record.block_bytes;
      const std::size_t end = std::min<std::size_t>(begin + record.block_bytes, view.nbytes());
      Xxh3Stream block;
      for (std::size_t at = begin; at < end; at += cache_resident_bytes) {
        const std::size_t piece = std::min(cache_resident_bytes, end - at);
        block.update(view.data() + at, piece);
        whole.update(view.data() + at, piece);
        content.update(view.data() + at, piece);
      }
      record.block_xxh3[b] = block.digest();
    }
    record.stored_xxh3 = whole.digest();
    hashes_[i] = content.digest();
  }

  const std::vector<NamedTensor>& tensors_;
  const std::vector<std::size_t>& first_block_bytes_;
  std::vector<std::size_t> stream_of_;     // per tensor with a first block: its index in first_blocks_
  std::vector<std::size_t> first_blocks_;  // the tensors whose first block is hashed early
  std::vector<std::size_t> rests_;         // every tensor, the largest rest first
  // Each element is touched by the one thread that took its job, and read
  // once the counters below say it is done.
  std::vector<ContentHashStream> streams_;  // per first block: the content hash so far
  std::vector<Xxh3Stream> block_streams_;   // per first block: its checksum, the whole bytes' so far
  std::vector<ContentHash> hashes_;
  std::vector<TensorRecord*> checksummed_;  // set by start_rests before any rest is taken

  std::mutex mutex_;
  std::condition_variable changed_;
  // Guarded by mutex_.
  std::size_t next_first_block_ = 0;
  std::size_t first_blocks_done_ = 0;
  std::size_t next_rest_ = 0;
  std::size_t rests_done_ = 0;
  bool rests_started_ = false;
  bool stopped_ = false;
};

}  // namespace ckpt::detail

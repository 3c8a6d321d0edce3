#pragma once

// The streaming part of a save: the data buffer written in file order while
// the tensors are checksummed and encoded chunk by chunk on the worker
// threads, through a fixed set of reusable buffers ("slots"). The header is
// written afterwards into the space the writer reserved (writer.hpp).
//
// What costs memory: one slot per CPU thread plus one (the chunk being
// written while every thread encodes the next ones), each holding one
// encoded chunk (at most the codec's bound of chunk_bytes) or a group of
// small raw tensors (at most chunk_bytes). Raw tensors of any size are
// written straight from the caller's memory and hashed there, meanwhile.
//
// The calling thread makes every file call (so a save's calls come from the
// thread that asked for it, as fault layers and recorders expect): it writes
// the units in file order as they become ready and, while the next one is
// not, prepares or checksums like the workers. Workers do CPU work only and
// never wait for a write unless the caller is there to make it, so a save
// completes even when every pool worker is busy elsewhere (nested saves):
// the caller can do all of it alone.
// Templates only so that programs that never save do not compile them (see
// "Compile time" in docs/architecture.md).

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/plan.hpp"

namespace ckpt::detail {

// Raw tensors smaller than this (and than chunk_bytes) are gathered into one
// slot with their neighbours and written by one call: 100,000 tensors of
// 1 KiB cost 25 writes of 4 MiB, not 100,000. Larger ones are written from
// the caller's memory, where a copy would cost more than the call saves.
inline constexpr std::size_t max_gathered_tensor_bytes = std::size_t(1) << 20;

// Whether a raw tensor is gathered with its neighbours rather than written alone.
inline bool gathered_tensor(const TensorSource& source, std::size_t chunk_bytes) {
  return source.codec == nullptr && source.raw_bytes < std::min(chunk_bytes, max_gathered_tensor_bytes);
}

// A contiguous run of the data buffer, written by one write call.
struct WriteUnit {
  enum class Kind { direct, gathered, chunk };
  Kind kind;
  std::size_t first_tensor;  // index into the plan
  std::size_t end_tensor;    // one past the last tensor (gathered); first + 1 otherwise
  std::size_t chunk;         // Kind::chunk: the chunk's index in its tensor
  std::size_t bytes;         // raw bytes the unit covers (direct, gathered)
};

// The units of `plan`, in file order. An encoded tensor without bytes still
// gets one (empty) chunk unit, where the writer learns its offset.
template <class = void>
std::vector<WriteUnit> write_units(const FileLayout& plan, std::size_t chunk_bytes) {
  using Kind = WriteUnit::Kind;
  std::vector<WriteUnit> units;
  for (std::size_t t = 0; t < plan.sources.size(); ++t) {
    const TensorSource& planned = plan.sources[t];
    if (planned.codec != nullptr) {
      const std::size_t chunks = std::max<std::size_t>(1, plan.records[t].chunk_sizes.size());
      for (std::size_t c = 0; c < chunks; ++c) units.push_back({Kind::chunk, t, t + 1, c, 0});
    } else if (!gathered_tensor(planned, chunk_bytes)) {
      units.push_back({Kind::direct, t, t + 1, 0, planned.raw_bytes});
    } else if (!units.empty() && units.back().kind == Kind::gathered &&
               units.back().bytes + planned.raw_bytes <= chunk_bytes) {
      units.back().end_tensor = t + 1;
      units.back().bytes += planned.raw_bytes;
    } else {
      units.push_back({Kind::gathered, t, t + 1, 0, planned.raw_bytes});
    }
  }
  return units;
}

// Streams the data buffer of `plan` into `file` from byte `data_start` on,
// filling in every record's checksums, chunk sizes and offsets. Returns the
// size of the data buffer. `path` names the file in errors.
template <class = void>
class SavePipeline {
 public:
  SavePipeline(AtomicFile& file, std::uint64_t data_start, FileLayout& plan, std::size_t chunk_bytes, unsigned threads,
               const std::string& path)
      : file_(file),
        data_start_(data_start),
        records_(plan.records),
        sources_(plan.sources),
        path_(path),
        units_(write_units(plan, chunk_bytes)),
        ready_(units_.size(), 0),
        slot_of_(units_.size(), 0) {
    const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    cpu_threads_ = std::min(threads == 0 ? cores : threads, cores);
    for (std::size_t u = 0; u < units_.size(); ++u) {
      if (units_[u].kind == WriteUnit::Kind::direct) {
        ready_[u] = 1;  // written from the caller's memory: nothing to prepare
      } else {
        to_prepare_.push_back(u);
      }
    }
    slots_.resize(std::min<std::size_t>(cpu_threads_ + 1, to_prepare_.size()));
    for (std::size_t s = slots_.size(); s-- > 0;) free_slots_.push_back(s);
    for (std::size_t t = 0; t < sources_.size(); ++t) {
      // Gathered tensors are checksummed as they are gathered.
      if (!gathered_tensor(sources_[t], chunk_bytes) && !sources_[t].checksummed_elsewhere) hash_jobs_.push_back(t);
    }
  }

  SavePipeline(const SavePipeline&) = delete;
  SavePipeline& operator=(const SavePipeline&) = delete;

  std::uint64_t run() {
    // As many workers as CPU threads, and the caller: it spends its time
    // waiting for the disk, while the workers keep the cores busy. The pool
    // may hand the caller none of the job's turns; it then takes part after.
    caller_ = std::this_thread::get_id();
    ThreadPool<>::shared().run(cpu_threads_ + 1, cpu_threads_, [this](std::size_t) { participate(); });
    participate();
    if (failure_) std::rethrow_exception(failure_);
    for (std::size_t t = 0; t < sources_.size(); ++t) {
      const TensorSource& source = sources_[t];
      if (source.codec == nullptr) continue;
      // Readers refuse a table that breaks the format's rule (a chunk denser
      // than it allows) as hostile; better to fail here than to publish a
      // file nobody can read.
      const TensorRecord& record = records_[t];
      if (auto problem = chunk_table_problem(source.raw_bytes, source.element_size, record.chunk_bytes,
                                             record.chunk_sizes, record.stored_bytes())) {
        throw CodecError(ErrorId::codec_encode, path_, record.name,
                         join({"codec '", record.codec, "' wrote chunks no reader accepts: ", *problem}));
      }
    }
    return offset_;
  }

 private:
  void participate() {
    const bool caller = std::this_thread::get_id() == caller_;
    std::unique_lock<std::mutex> lock(mutex_);
    if (caller) {
      caller_present_ = true;
      changed_.notify_all();
    }
    while (!failure_ && (next_write_ < units_.size() || hash_jobs_done_ < hash_jobs_.size())) {
      const bool cpu_free = cpu_busy_ < cpu_threads_;
      if (caller && next_write_ < units_.size() && ready_[next_write_]) {
        write_next(lock);
      } else if (cpu_free && next_prepare_ < to_prepare_.size() && !free_slots_.empty()) {
        prepare_next(lock);
      } else if (cpu_free && next_hash_job_ < hash_jobs_.size()) {
        hash_next(lock);
      } else if (!caller &&
                 (!caller_present_ || (next_prepare_ == to_prepare_.size() && next_hash_job_ == hash_jobs_.size()))) {
        break;  // what is left is writing, or waits for a write only the caller makes
      } else {
        changed_.wait(lock);
      }
    }
    if (caller) caller_present_ = false;
  }

  // Runs `work` with the lock released; a failure stops every participant.
  template <class Work>
  void unlocked(std::unique_lock<std::mutex>& lock, Work&& work) {
    lock.unlock();
    std::exception_ptr failure;
    try {
      work();
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !failure_) failure_ = failure;
  }

  void write_next(std::unique_lock<std::mutex>& lock) {
    const std::size_t u = next_write_;
    const bool direct = units_[u].kind == WriteUnit::Kind::direct;
    static const std::vector<std::byte> no_slot;
    unlocked(lock, [&] { write_unit(units_[u], direct ? no_slot : slots_[slot_of_[u]]); });
    ++next_write_;
    if (!direct) free_slots_.push_back(slot_of_[u]);
    changed_.notify_all();
  }

  void prepare_next(std::unique_lock<std::mutex>& lock) {
    const std::size_t u = to_prepare_[next_prepare_++];
    slot_of_[u] = free_slots_.back();
    free_slots_.pop_back();
    ++cpu_busy_;
    unlocked(lock, [&] { prepare_unit(units_[u], slots_[slot_of_[u]]); });
    --cpu_busy_;
    ready_[u] = 1;
    changed_.notify_all();
  }

  void hash_next(std::unique_lock<std::mutex>& lock) {
    const std::size_t t = hash_jobs_[next_hash_job_++];
    ++cpu_busy_;
    unlocked(lock, [&] { hash_tensor(sources_[t], records_[t]); });
    --cpu_busy_;
    ++hash_jobs_done_;
    changed_.notify_all();
  }

  // Fills a slot: the encoding of one chunk, or a group of small raw tensors.
  void prepare_unit(const WriteUnit& unit, std::vector<std::byte>& slot) {
    if (unit.kind == WriteUnit::Kind::gathered) {
      // Resized without clearing first: a slot keeps its size from one group
      // to the next, so its bytes are not zeroed each time only to be copied
      // over (for 100,000 small tensors, that was 100 MB of zeroes a save).
      slot.resize(unit.bytes);
      std::size_t at = 0;
      for (std::size_t t = unit.first_tensor; t < unit.end_tensor; ++t) {
        const TensorSource& source = sources_[t];
        TensorRecord& record = records_[t];
        if (source.raw_bytes != 0) std::memcpy(slot.data() + at, source.data, source.raw_bytes);
        // A gathered tensor fits one block, whose checksum is the tensor's.
        record.stored_xxh3 = xxh3(slot.data() + at, source.raw_bytes);
        if (!record.block_xxh3.empty()) record.block_xxh3[0] = record.stored_xxh3;
        at += source.raw_bytes;
      }
      return;
    }
    slot.clear();
    const TensorSource& planned = sources_[unit.first_tensor];
    TensorRecord& record = records_[unit.first_tensor];
    if (record.chunk_sizes.empty()) return;  // an empty tensor
    const std::size_t begin = unit.chunk * record.chunk_bytes;
    const std::size_t size = std::min<std::size_t>(record.chunk_bytes, planned.raw_bytes - begin);
    const std::byte* input = planned.data + begin;
    // An xor-delta chunk: the XOR with the base's bytes, in a buffer of this
    // thread's (one chunk per participant, like the slots).
    thread_local std::vector<std::byte> delta;
    if (planned.base != nullptr) {
      delta.resize(size);
      (*planned.base)(begin, begin + size, delta.data());
      for (std::size_t i = 0; i < size; ++i) delta[i] ^= input[i];
      input = delta.data();
    }
    try {
      planned.codec->encode(input, size, planned.element_size, slot);
    } catch (...) {
      rethrow_chunk_error(ErrorId::codec_encode, *planned.codec, unit.chunk, record.chunk_sizes.size(), path_,
                          record.name);
    }
    record.chunk_sizes[unit.chunk] = slot.size();
    record.block_xxh3[unit.chunk] = xxh3(slot.data(), slot.size());
  }

  // Checksums of a tensor read from the caller's memory: a raw tensor's
  // blocks and whole checksum, an encoded tensor's checksum of its raw bytes.
  void hash_tensor(const TensorSource& planned, TensorRecord& record) {
    if (planned.codec != nullptr) {
      record.raw_xxh3 = xxh3(planned.data, planned.raw_bytes);
      return;
    }
    if (record.block_xxh3.size() == 1) {
      record.stored_xxh3 = record.block_xxh3[0] = xxh3(planned.data, planned.raw_bytes);
      return;
    }
    // Both checksums in one pass over the bytes: each piece feeds its
    // block's hash and the whole one while it is in the core's cache. Two
    // passes (a block, then the same block again for the whole checksum)
    // read every byte from memory twice, as a block is larger than the
    // cache, and memory, not the hash, bounds the speed: the second pass
    // made a save's hashing take twice as long.
    Xxh3Stream whole;
    for (std::size_t b = 0; b < record.block_xxh3.size(); ++b) {
      const std::size_t begin = b * record.block_bytes;
      const std::size_t end = std::min<std::size_t>(begin + record.block_bytes, planned.raw_bytes);
      Xxh3Stream block;
      for (std::size_t at = begin; at < end; at += cache_resident_bytes) {
        const std::size_t size = std::min(cache_resident_bytes, end - at);
        block.update(planned.data + at, size);
        whole.update(planned.data + at, size);
      }
      record.block_xxh3[b] = block.digest();
    }
    record.stored_xxh3 = whole.digest();
  }

  // Writes one unit at the end of what was written so far and records the
  // offsets it settles. Only the caller writes, in file order.
  void write_unit(const WriteUnit& unit, const std::vector<std::byte>& slot) {
    if (unit.kind == WriteUnit::Kind::direct) {
      const TensorSource& source = sources_[unit.first_tensor];
      place(records_[unit.first_tensor], source.raw_bytes);
      file_.write_at(data_start_ + records_[unit.first_tensor].begin, source.data, source.raw_bytes);
      return;
    }
    const std::uint64_t at = offset_;
    if (unit.kind == WriteUnit::Kind::gathered) {
      for (std::size_t t = unit.first_tensor; t < unit.end_tensor; ++t) place(records_[t], sources_[t].raw_bytes);
    } else {
      TensorRecord& record = records_[unit.first_tensor];
      // The whole-tensor checksum of the stored bytes runs over the chunks in
      // order, so it is taken here, while the chunk is still in its slot.
      if (unit.chunk == 0) {
        record.begin = offset_;
        stored_stream_ = Xxh3Stream();
      }
      stored_stream_.update(slot.data(), slot.size());
      offset_ += slot.size();
      if (unit.chunk + 1 >= record.chunk_sizes.size()) {
        record.end = offset_;
        record.stored_shape = {record.end - record.begin};
        record.stored_xxh3 = stored_stream_.digest();
      }
    }
    if (!slot.empty()) file_.write_at(data_start_ + at, slot.data(), slot.size());
  }

  void place(TensorRecord& record, std::uint64_t size) {
    record.begin = offset_;
    offset_ += size;
    record.end = offset_;
  }

  AtomicFile& file_;
  const std::uint64_t data_start_;
  std::vector<TensorRecord>& records_;
  const std::vector<TensorSource>& sources_;
  const std::string& path_;
  unsigned cpu_threads_ = 1;

  std::mutex mutex_;
  std::condition_variable changed_;
  // Guarded by mutex_.
  const std::vector<WriteUnit> units_;
  std::vector<char> ready_;              // per unit: prepared, may be written
  std::vector<std::size_t> slot_of_;     // per unit: the slot holding its bytes
  std::vector<std::size_t> to_prepare_;  // units that need a slot, in file order
  std::size_t next_prepare_ = 0;
  std::size_t next_write_ = 0;
  bool caller_present_ = false;         // the caller is taking part: slots will be freed
  std::vector<std::size_t> hash_jobs_;  // tensors hashed from the caller's memory
  std::size_t next_hash_job_ = 0;
  std::size_t hash_jobs_done_ = 0;
  unsigned cpu_busy_ = 0;
  std::vector<std::size_t> free_slots_;
  std::exception_ptr failure_;
  // A slot is touched only by the participant that claimed its unit.
  std::vector<std::vector<std::byte>> slots_;
  std::thread::id caller_;
  // Touched only by the caller, which makes every write.
  std::uint64_t offset_ = 0;
  Xxh3Stream stored_stream_;
};

}  // namespace ckpt::detail

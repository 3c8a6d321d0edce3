#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/detail/codec/scratch.hpp"
#include "ckpt/detail/format/chunk_table.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// A tensor's stored bytes: the chunks' encodings back to back, and the stored
// size of each chunk (chunk i holds raw bytes [i * chunk, (i + 1) * chunk)).
struct EncodedTensor {
  std::vector<std::byte> bytes;
  std::vector<std::uint64_t> chunk_sizes;
};

// Raw bytes per chunk: `chunk_bytes` rounded down to whole elements, at least
// one element, so filters never see a split element. 0 when either is 0.
inline std::size_t chunk_raw_bytes(std::size_t chunk_bytes, std::size_t element_size) {
  if (chunk_bytes == 0 || element_size == 0) return 0;
  return std::max(element_size, chunk_bytes / element_size * element_size);
}

// Rethrows the exception in flight as a CodecError naming the file, the tensor,
// the codec and the chunk. A codec's own CodecError keeps its id; anything else
// a codec throws becomes `fallback`.
[[noreturn]] inline void rethrow_chunk_error(ErrorId fallback, const Codec& codec, std::size_t index, std::size_t count,
                                             const std::string& file, const std::string& tensor) {
  const std::string where = join({"codec '", codec.name(), "', chunk ", index, " of ", count, ": "});
  try {
    throw;
  } catch (const CodecError& error) {
    error.rethrow_with(file, tensor, where);
  } catch (const Error& error) {
    throw CodecError(fallback, file, tensor, where + error.message());
  } catch (const std::exception& error) {
    throw CodecError(fallback, file, tensor, where + error.what());
  } catch (...) {
    throw CodecError(fallback, file, tensor, join({where, "unknown exception"}));
  }
}

// Collects encoded chunks into one buffer, in chunk order, as threads finish
// them. Threads encode into a reused per-thread buffer (see scratch.hpp) and
// each chunk is copied once into place. A chunk finished before its
// predecessor waits in `pending_` until the thread appending the predecessor
// takes it.
template <class = void>
class OrderedChunks {
 public:
  OrderedChunks(std::size_t count, std::size_t expected_bytes) : pending_(count), ready_(count, false) {
    result_.bytes.reserve(expected_bytes);
    result_.chunk_sizes.reserve(count);
  }

  void add(std::size_t index, const std::vector<std::byte>& encoded) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (index == next_) {
      append(encoded);
    } else {
      lock.unlock();
      std::vector<std::byte> copy(encoded);  // outside the lock: it allocates
      lock.lock();
      pending_[index] = std::move(copy);
      ready_[index] = true;
    }
    while (next_ < ready_.size() && ready_[next_]) {
      append(pending_[next_]);
      std::vector<std::byte>().swap(pending_[next_ - 1]);
    }
  }

  // Call once every chunk was added.
  EncodedTensor take() { return std::move(result_); }

 private:
  void append(const std::vector<std::byte>& encoded) {
    result_.bytes.insert(result_.bytes.end(), encoded.begin(), encoded.end());
    result_.chunk_sizes.push_back(encoded.size());
    ++next_;
  }

  std::mutex mutex_;
  std::size_t next_ = 0;  // index of the next chunk to append
  std::vector<std::vector<std::byte>> pending_;
  std::vector<bool> ready_;
  EncodedTensor result_;
};

// Splits data into chunks of chunk_bytes raw bytes (rounded down to a whole
// number of elements) and encodes them in parallel. `file` and `tensor` name
// the tensor in error messages. Empty input gives no chunks. (The templates
// here are so only that programs that encode or decode nothing do not compile
// them; see "Compile time" in docs/architecture.md.)
template <class = void>
inline EncodedTensor encode_chunked(const Codec& codec, const std::byte* data, std::size_t size,
                                    std::size_t element_size, std::size_t chunk_bytes, unsigned threads,
                                    const std::string& file = {}, const std::string& tensor = {}) {
  const std::size_t chunk = chunk_raw_bytes(chunk_bytes, element_size);
  if (chunk == 0) {
    throw ArgumentError(ErrorId::argument_invalid, file, tensor,
                        join({"chunk size and element size must be positive, found chunk size ", chunk_bytes,
                              " and element size ", element_size}));
  }
  const std::size_t count = chunk_count(size, chunk);
  // Room for data that does not compress; reserving touches no memory yet.
  OrderedChunks chunks(count, size + size / 64 + 64 * count);
  parallel_for(count, threads, [&](std::size_t i) {
    try {
      thread_local std::vector<std::byte> buffer;
      ScratchLoan scratch(buffer);
      std::vector<std::byte>& encoded = scratch.emptied();
      const std::size_t begin = i * chunk;
      codec.encode(data + begin, std::min(chunk, size - begin), element_size, encoded);
      chunks.add(i, encoded);
    } catch (...) {
      rethrow_chunk_error(ErrorId::codec_encode, codec, i, count, file, tensor);
    }
  });
  return chunks.take();
}

// Inverse of encode_chunked: decodes every chunk in parallel into exactly
// `out_size` bytes at `out`, `chunk_bytes` rounded as encode_chunked rounds
// it. Throws FormatError format_metadata when the chunk table breaks the rule
// of chunk_table.hpp, and CodecError codec_decode naming `file`, `tensor` and
// the chunk when a chunk is corrupt. `before_chunk(i)`, when given, runs on
// the thread about to decode chunk i (the reader verifies the chunk's block
// checksum there, so reading, checking and decoding overlap).
template <class = void>
void decode_chunked(const Codec& codec, const std::byte* stored, std::size_t stored_size,
                    const std::vector<std::uint64_t>& chunk_sizes, std::size_t chunk_bytes, std::size_t element_size,
                    std::byte* out, std::size_t out_size, unsigned threads, const std::string& file = {},
                    const std::string& tensor = {}, const std::function<void(std::size_t)>& before_chunk = nullptr) {
  const std::size_t chunk = chunk_raw_bytes(chunk_bytes, element_size);
  check_chunk_table(out_size, element_size, chunk, chunk_sizes, stored_size, file, tensor);
  std::vector<std::size_t> offsets(chunk_sizes.size());
  for (std::size_t i = 1; i < offsets.size(); ++i) offsets[i] = offsets[i - 1] + chunk_sizes[i - 1];
  parallel_for(chunk_sizes.size(), threads, [&](std::size_t i) {
    if (before_chunk) before_chunk(i);  // outside the try: its errors are not the codec's
    try {
      const std::size_t begin = i * chunk;
      codec.decode(stored + offsets[i], chunk_sizes[i], element_size, out + begin, std::min(chunk, out_size - begin));
    } catch (...) {
      rethrow_chunk_error(ErrorId::codec_decode, codec, i, chunk_sizes.size(), file, tensor);
    }
  });
}

// Decodes the bytes [byte_begin, byte_end) of a chunked tensor of
// `out_size` decoded bytes into `out` (byte_end - byte_begin bytes),
// decoding only the chunks that cover the range: those inside it straight
// into `out`, the ones it cuts through a per-thread buffer. Same errors and
// `before_chunk` as decode_chunked.
template <class = void>
void decode_chunk_range(const Codec& codec, const std::byte* stored, std::size_t stored_size,
                        const std::vector<std::uint64_t>& chunk_sizes, std::size_t chunk_bytes,
                        std::size_t element_size, std::size_t out_size, std::size_t byte_begin, std::size_t byte_end,
                        std::byte* out, unsigned threads, const std::string& file = {}, const std::string& tensor = {},
                        const std::function<void(std::size_t)>& before_chunk = nullptr) {
  const std::size_t chunk = chunk_raw_bytes(chunk_bytes, element_size);
  check_chunk_table(out_size, element_size, chunk, chunk_sizes, stored_size, file, tensor);
  if (byte_begin >= byte_end) return;
  const std::size_t first = byte_begin / chunk, last = (byte_end - 1) / chunk;
  std::size_t first_offset = 0;
  for (std::size_t i = 0; i < first; ++i) first_offset += chunk_sizes[i];
  std::vector<std::size_t> offsets(last - first + 1, first_offset);
  for (std::size_t i = 1; i < offsets.size(); ++i) offsets[i] = offsets[i - 1] + chunk_sizes[first + i - 1];
  parallel_for(offsets.size(), threads, [&](std::size_t i) {
    const std::size_t index = first + i;
    if (before_chunk) before_chunk(index);
    try {
      const std::size_t begin = index * chunk, size = std::min(chunk, out_size - begin);
      const std::size_t from = std::max(begin, byte_begin), to = std::min(begin + size, byte_end);
      if (from == begin && to == begin + size) {
        codec.decode(stored + offsets[i], chunk_sizes[index], element_size, out + (begin - byte_begin), size);
        return;
      }
      thread_local std::vector<std::byte> buffer;
      ScratchLoan scratch(buffer);
      std::byte* decoded = scratch.data(size);
      codec.decode(stored + offsets[i], chunk_sizes[index], element_size, decoded, size);
      std::memcpy(out + (from - byte_begin), decoded + (from - begin), to - from);
    } catch (...) {
      rethrow_chunk_error(ErrorId::codec_decode, codec, index, chunk_sizes.size(), file, tensor);
    }
  });
}

}  // namespace ckpt::detail

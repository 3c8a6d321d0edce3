#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/registry.hpp"
#include "ckpt/detail/format/blocks.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/format/name_index.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct ReadOptions {
  bool verify_checksums = true;  // check each tensor's checksum on its first read
  unsigned threads = 0;          // decode / verify threads; 0 = hardware_concurrency
};

struct TensorInfo {
  std::string name;
  DType dtype = DType::U8;  // the logical dtype and shape (before encoding)
  Shape shape;
  std::string codec;               // "raw" for plain safetensors tensors
  std::uint64_t stored_bytes = 0;  // bytes in the file
  std::uint64_t file_offset = 0;   // absolute offset of the stored bytes in the file
  bool checksummed = false;        // false for safetensors files not written by ckpt
};

// An open checkpoint (or any safetensors file). Opening maps the file
// read-only and validates the header only, so it is fast at any file size;
// tensor bytes are read, and their checksums verified, when first used: in
// a format version 2 file only the checksum blocks a read touches, each
// once. Large reads run on up to ReadOptions::threads threads, each hashing
// and copying (or decoding) its own blocks. Safe to use from several threads
// at once.
class Reader {
 public:
  template <class = void>
  explicit Reader(const std::string& path, ReadOptions options = {})
      : path_(path), options_(options), file_(std::make_shared<detail::MappedFile>(path)) {
    detail::ParsedHeader header = detail::HeaderParser(path, file_->data(), file_->size()).parse();
    data_start_ = header.data_start;
    format_version_ = header.format_version;
    metadata_ = std::move(header.user_metadata);
    raw_metadata_ = std::move(header.raw_metadata);
    records_ = std::move(header.tensors);
    verified_ = std::make_unique<std::atomic<bool>[]>(records_.size());
    codec_of_.assign(records_.size(), no_codec);
    std::map<std::string_view, std::size_t> codec_numbers;
    infos_.reserve(records_.size());
    for (std::size_t i = 0; i < records_.size(); ++i) {
      const detail::TensorRecord& record = records_[i];
      infos_.push_back(TensorInfo{record.name, record.dtype, record.shape, record.codec, record.stored_bytes(),
                                  data_start_ + record.begin, record.checksummed});
      verified_[i].store(false, std::memory_order_relaxed);
      if (record.encoded()) codec_of_[i] = codec_numbers.emplace(record.codec, codec_numbers.size()).first->second;
    }
    codecs_ = std::make_unique<LazyCodec[]>(codec_numbers.size());
    blocks_ = detail::BlockVerifier<>(records_);
    index_ = detail::NameIndex<>(records_);  // views the names of records_, which never change after this
  }

  const std::string& path() const noexcept { return path_; }
  const ReadOptions& options() const noexcept { return options_; }
  std::uint64_t file_size() const noexcept { return file_->size(); }
  bool written_by_ckpt() const noexcept { return format_version_ != 0; }
  int format_version() const noexcept { return format_version_; }
  const std::vector<TensorInfo>& tensors() const noexcept { return infos_; }  // in file order

  const TensorInfo* find(std::string_view name) const noexcept {
    const auto found = index_.find(name);
    return found ? &infos_[*found] : nullptr;
  }

  // The user metadata object given to write_checkpoint ({} if none).
  const nlohmann::json& metadata() const noexcept { return metadata_; }
  // __metadata__ verbatim.
  const std::map<std::string, std::string>& raw_metadata() const noexcept { return raw_metadata_; }

  // Raw tensors: a zero-copy Tensor borrowing the mapping (copied only when a
  // foreign file leaves it misaligned); encoded tensors: decoded into an
  // owning Tensor. Missing name: MismatchError mismatch_missing_tensor.
  template <class = void>
  Tensor tensor(std::string_view name) const {
    const std::size_t index = index_of(name);
    const detail::TensorRecord& record = records_[index];
    if (!record.encoded()) {
      const std::byte* data = checked_stored_bytes(index, options_.verify_checksums, false);
      if (reinterpret_cast<std::uintptr_t>(data) % dtype_size(record.dtype) != 0) {
        return Tensor::copy_of(TensorView(record.dtype, record.shape, data));
      }
      return Tensor::borrowed(record.dtype, record.shape, data, file_);
    }
    Tensor tensor = Tensor::allocate(record.dtype, record.shape);
    decode_into(index, tensor.mutable_data(), options_.verify_checksums);
    return tensor;
  }

  // Copies (or decodes) a tensor into caller memory of exactly its byte size.
  template <class = void>
  void read_into(std::string_view name, void* out, std::uint64_t out_size) const {
    const std::size_t index = index_of(name);
    const detail::TensorRecord& record = records_[index];
    const std::uint64_t expected = byte_size(record.dtype, record.shape);
    if (out_size != expected) {
      throw ArgumentError(
          ErrorId::argument_invalid, path_, record.name,
          "expected an output buffer of " + std::to_string(expected) + " bytes, found " + std::to_string(out_size));
    }
    if (record.encoded()) {
      decode_into(index, static_cast<std::byte*>(out), options_.verify_checksums);
    } else {
      copy_stored(index, 0, expected, static_cast<std::byte*>(out));
    }
  }

  // Copies the decoded bytes [byte_begin, byte_end) of a tensor into `out`
  // (byte_end - byte_begin bytes): a raw tensor's range is copied from the
  // file; an encoded tensor decodes only the chunks that cover it. The
  // stored bytes' checksum is verified as read_into does; a range short of
  // the whole encoded tensor cannot check its decoded checksum. A range past
  // the tensor's end is an ArgumentError. (A template only so that programs
  // that never read a range do not compile the range decoder.)
  template <class = void>
  void read_range(std::string_view name, std::uint64_t byte_begin, std::uint64_t byte_end, void* out) const {
    const std::size_t index = index_of(name);
    const detail::TensorRecord& record = records_[index];
    const std::uint64_t size = byte_size(record.dtype, record.shape);
    if (byte_begin > byte_end || byte_end > size) {
      throw ArgumentError(ErrorId::argument_invalid, path_, record.name,
                          "expected a byte range within the tensor's " + std::to_string(size) + " bytes, found [" +
                              std::to_string(byte_begin) + ", " + std::to_string(byte_end) + ")");
    }
    if (byte_begin == 0 && byte_end == size) {
      read_into(name, out, size);
      return;
    }
    if (byte_begin == byte_end) return;
    auto* target = static_cast<std::byte*>(out);
    if (!record.encoded()) {
      copy_stored(index, byte_begin, byte_end, target);
      return;
    }
    const bool by_block = options_.verify_checksums && record.block_checksummed;
    const std::byte* stored = checked_stored_bytes(index, options_.verify_checksums && !by_block, false);
    detail::decode_chunk_range(codec_for(index), stored, record.stored_bytes(), record.chunk_sizes, record.chunk_bytes,
                               dtype_size(record.dtype), size, byte_begin, byte_end, target, options_.threads, path_,
                               record.name, chunk_check(index, stored, by_block));
  }

  // Checks every checksum (even with verify_checksums off): every block, each
  // tensor's whole stored and decoded checksums; decodes every encoded
  // tensor. Throws IntegrityError / CodecError naming file and tensor.
  template <class = void>
  void verify() const {
    detail::parallel_for(records_.size(), options_.threads, [&](std::size_t index) {
      const detail::TensorRecord& record = records_[index];
      const std::byte* stored = checked_stored_bytes(index, true, true);
      // A v2 read checks the blocks; the whole checksum is verify()'s alone.
      if (record.block_checksummed) check_whole_stored(index, stored);
      if (!record.encoded()) return;
      std::vector<std::byte> decoded(byte_size(record.dtype, record.shape));
      decode_into(index, decoded.data(), true);
    });
  }

 private:
  template <class = void>
  std::size_t index_of(std::string_view name) const {
    const auto found = index_.find(name);
    if (!found) {
      throw MismatchError(ErrorId::mismatch_missing_tensor, path_, std::string(name),
                          "expected a tensor of this name, found none among the " + std::to_string(records_.size()) +
                              " tensors of the file");
    }
    return *found;
  }

  // The stored bytes of a tensor, checksum-verified once per Reader when
  // `verify`: a v1 tensor's whole checksum, a v2 tensor's blocks (on up to
  // ReadOptions::threads threads); a racing second verification is harmless.
  // When they are about to be read whole (`read_whole`, or to checksum them)
  // the kernel is told, so that a cold file streams in at the disk's speed.
  template <class = void>
  const std::byte* checked_stored_bytes(std::size_t index, bool verify, bool read_whole) const {
    const detail::TensorRecord& record = records_[index];
    const std::byte* data = file_->data() + data_start_ + record.begin;
    const bool check = verify && record.checksummed && !verified_[index].load(std::memory_order_acquire);
    if (read_whole || check) file_->will_read(data_start_ + record.begin, record.stored_bytes());
    if (check) {
      if (record.block_checksummed) {
        blocks_.verify_range(index, record, 0, record.stored_bytes(), data, path_, options_.threads);
      } else {
        check_whole_stored(index, data);
      }
      verified_[index].store(true, std::memory_order_release);
    }
    return data;
  }

  template <class = void>
  void check_whole_stored(std::size_t index, const std::byte* data) const {
    const detail::TensorRecord& record = records_[index];
    const std::uint64_t found = detail::xxh3(data, record.stored_bytes());
    if (found != record.stored_xxh3) {
      throw IntegrityError(ErrorId::integrity_tensor_checksum, path_, record.name,
                           "checksum mismatch: expected xxh3 " + detail::checksum_to_hex(record.stored_xxh3) +
                               " of the " + std::to_string(record.stored_bytes()) + " stored bytes, found " +
                               detail::checksum_to_hex(found));
    }
  }

  // Copies a raw tensor's bytes [begin, end) to `out`. With verification, a
  // v1 tensor is checked whole first; in a v2 file each thread checks a block
  // the range touches and copies its part, so hashing and copying overlap and
  // nothing outside the range's blocks is read. When a block fails its check,
  // `out` may hold some of its bytes: the read throws.
  template <class = void>
  void copy_stored(std::size_t index, std::uint64_t begin, std::uint64_t end, std::byte* out) const {
    if (begin == end) return;
    const detail::TensorRecord& record = records_[index];
    const bool by_block =
        options_.verify_checksums && record.block_checksummed && !verified_[index].load(std::memory_order_acquire);
    const std::byte* stored = checked_stored_bytes(index, options_.verify_checksums && !by_block, false);
    file_->will_read(data_start_ + record.begin + begin, end - begin);
    // Pieces of a copy without blocks to check: large enough that a thread's
    // share is worth waking it, small enough that both cores take part.
    constexpr std::uint64_t copy_piece_bytes = std::uint64_t(4) << 20;
    const std::pair<std::size_t, std::size_t> touched =
        by_block ? detail::blocks_touching(record, begin, end)
                 : std::pair<std::size_t, std::size_t>(0, detail::chunk_count(end - begin, copy_piece_bytes));
    detail::parallel_for(touched.second - touched.first, options_.threads, [&](std::size_t i) {
      if (!by_block) {
        const std::uint64_t from = begin + i * copy_piece_bytes, to = std::min(from + copy_piece_bytes, end);
        std::memcpy(out + (from - begin), stored + from, to - from);
        return;
      }
      const std::size_t block = touched.first + i;
      const detail::StoredSpan span = detail::block_span(record, block);
      const std::uint64_t from = std::max(span.begin, begin), to = std::min(span.end, end);
      if (blocks_.verified(index, block) || from != span.begin || to != span.end) {
        blocks_.verify(index, record, block, stored, path_);
        std::memcpy(out + (from - begin), stored + from, to - from);
        return;
      }
      // A whole block copied: hash each piece while it is in the cache from
      // copying it, so the bytes come from memory once.
      constexpr std::uint64_t cached_piece_bytes = std::uint64_t(128) << 10;
      detail::Xxh3Stream hash;
      for (std::uint64_t piece = from; piece < to; piece += cached_piece_bytes) {
        const std::uint64_t size = std::min(cached_piece_bytes, to - piece);
        std::memcpy(out + (piece - begin), stored + piece, size);
        hash.update(out + (piece - begin), size);
      }
      blocks_.check(index, record, block, hash.digest(), path_);
    });
  }

  // What decoding runs before each chunk of encoded tensor `index`: with
  // `by_block`, the check of the chunk's block checksum; otherwise nothing.
  template <class = void>
  std::function<void(std::size_t)> chunk_check(std::size_t index, const std::byte* stored, bool by_block) const {
    if (!by_block) return nullptr;
    return [this, index, stored](std::size_t chunk) { blocks_.verify(index, records_[index], chunk, stored, path_); };
  }

  // The codec of an encoded tensor, made from the registry on the first read
  // that needs it and shared by every tensor naming it: later reads neither
  // parse the name nor lock the registry again. A codec the registry cannot
  // make is reported on each read of a tensor that needs it, so the file's
  // other tensors stay readable.
  const Codec& codec_for(std::size_t index) const {
    const detail::TensorRecord& record = records_[index];
    LazyCodec& slot = codecs_[codec_of_[index]];
    std::call_once(slot.once, [&] {
      try {
        slot.codec = CodecRegistry::instance().make(record.codec);
      } catch (const Error& error) {
        slot.problem = error.message();
      }
    });
    if (!slot.codec) throw CodecError(ErrorId::codec_unknown, path_, record.name, slot.problem);
    return *slot.codec;
  }

  template <class = void>
  void decode_into(std::size_t index, std::byte* out, bool verify) const {
    const detail::TensorRecord& record = records_[index];
    const bool by_block = verify && record.block_checksummed && !verified_[index].load(std::memory_order_acquire);
    const std::byte* stored = checked_stored_bytes(index, verify && !by_block, true);
    const Codec& codec = codec_for(index);
    const std::uint64_t raw_bytes = byte_size(record.dtype, record.shape);
    if (raw_bytes != 0) {
      detail::decode_chunked(codec, stored, record.stored_bytes(), record.chunk_sizes, record.chunk_bytes,
                             dtype_size(record.dtype), out, raw_bytes, options_.threads, path_, record.name,
                             chunk_check(index, stored, by_block));
    }
    const std::uint64_t found = verify ? detail::xxh3(out, raw_bytes) : record.raw_xxh3;
    if (found != record.raw_xxh3) {
      throw IntegrityError(ErrorId::integrity_tensor_checksum, path_, record.name,
                           "checksum mismatch after decoding with codec '" + record.codec + "': expected xxh3 " +
                               detail::checksum_to_hex(record.raw_xxh3) + " of the " + std::to_string(raw_bytes) +
                               " decoded bytes, found " + detail::checksum_to_hex(found));
    }
  }

  std::string path_;
  ReadOptions options_;
  std::shared_ptr<const detail::MappedFile> file_;
  std::uint64_t data_start_ = 0;
  int format_version_ = 0;
  nlohmann::json metadata_ = nlohmann::json(nlohmann::json::value_t::object);
  std::map<std::string, std::string> raw_metadata_;
  std::vector<detail::TensorRecord> records_;
  std::vector<TensorInfo> infos_;
  detail::NameIndex<> index_;
  std::unique_ptr<std::atomic<bool>[]> verified_;  // per record: every checksum it has was verified
  detail::BlockVerifier<> blocks_;                 // v2 files: which blocks were verified

  struct LazyCodec {
    std::once_flag once;
    std::shared_ptr<const Codec> codec;  // null when the registry could not make it
    std::string problem;                 // then: why
  };
  static constexpr std::size_t no_codec = static_cast<std::size_t>(-1);
  std::vector<std::size_t> codec_of_;    // per record: its entry in codecs_, or no_codec for raw tensors
  std::unique_ptr<LazyCodec[]> codecs_;  // one per codec name the file uses
};

}  // namespace ckpt

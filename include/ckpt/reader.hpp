#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/registry.hpp"
#include "ckpt/detail/format/blocks.hpp"
#include "ckpt/detail/format/chain.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/format/name_index.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/text.hpp"
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
  // An incremental checkpoint's referenced tensor (docs/format.md, section 8):
  // the file that stores its bytes, relative to this file's directory; codec
  // is then "reference" and stored_bytes and file_offset are 0. Empty for a
  // tensor this file stores.
  std::string stored_in;
};

// One range of Reader::read_ranges: a tensor's decoded bytes [begin, end),
// copied to the output at byte `target`.
struct ByteRangeCopy {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
  std::uint64_t target = 0;
};

// An open checkpoint (or any safetensors file). Opening maps the file
// read-only and validates the header only, so it is fast at any file size;
// tensor bytes are read, and their checksums verified, when first used: in
// a format version 2 file only the checksum blocks a read touches, each
// once. Large reads run on up to ReadOptions::threads threads, each hashing
// and copying (or decoding) its own blocks. Safe to use from several threads
// at once.
//
// An incremental checkpoint's referenced tensors are read from the files
// that store them, opened (and their header checksum compared with the one
// recorded) on first use; their reads are verified like the file's own.
class Reader {
 public:
  template <class = void>
  explicit Reader(const std::string& path, ReadOptions options = {});
  // Moved, never copied (its once flags and atomics cannot be): said here,
  // since the vectors holding them declare a copy.
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;
  Reader(Reader&&) = default;
  Reader& operator=(Reader&&) = default;

  const std::string& path() const noexcept { return path_; }
  const ReadOptions& options() const noexcept { return options_; }
  std::uint64_t file_size() const noexcept { return file_->size(); }
  bool written_by_ckpt() const noexcept { return format_version_ != 0; }
  int format_version() const noexcept { return format_version_; }
  // In file order, then the referenced tensors by name.
  const std::vector<TensorInfo>& tensors() const noexcept { return infos_; }

  template <class = void>
  const TensorInfo* find(std::string_view name) const noexcept {
    const auto found = index_.find(name);
    if (found) return &infos_[*found];
    const auto referenced = reference_index_.find(name);
    return referenced == reference_index_.end() ? nullptr : &infos_[records_.size() + referenced->second];
  }

  // Incremental checkpoints (docs/format.md, section 8): the parent it was
  // saved against (relative to this file's directory; empty for a full
  // checkpoint), how many saves since the last full one (0 for a full one)
  // and the files its referenced tensors are stored in.
  std::string parent_file() const { return chain_ ? chain_->parent.file : std::string(); }
  std::uint64_t chain_depth() const noexcept { return chain_ ? chain_->depth : 0; }
  template <class = void>
  std::vector<std::string> source_files() const {
    std::vector<std::string> files;
    if (chain_) {
      for (const detail::ChainFile& source : chain_->sources) files.push_back(source.file);
    }
    return files;
  }

  // The user metadata object given to write_checkpoint ({} if none).
  const nlohmann::json& metadata() const noexcept { return metadata_; }
  // __metadata__ verbatim.
  const std::map<std::string, std::string>& raw_metadata() const noexcept { return raw_metadata_; }

  // Raw tensors: a zero-copy Tensor borrowing the mapping (copied only when a
  // foreign file leaves it misaligned); encoded tensors: decoded into an
  // owning Tensor. Missing name: MismatchError mismatch_missing_tensor.
  template <class = void>
  Tensor tensor(std::string_view name) const;

  // Copies (or decodes) a tensor into caller memory of exactly its byte size.
  template <class = void>
  void read_into(std::string_view name, void* out, std::uint64_t out_size) const;

  // Copies the decoded bytes [byte_begin, byte_end) of a tensor into `out`
  // (byte_end - byte_begin bytes): a raw tensor's range is copied from the
  // file; an encoded tensor decodes only the chunks that cover it. The
  // stored bytes' checksum is verified as read_into does; a range short of
  // the whole encoded tensor cannot check its decoded checksum. A range past
  // the tensor's end is an ArgumentError. (A template only so that programs
  // that never read a range do not compile the range decoder.)
  template <class = void>
  void read_range(std::string_view name, std::uint64_t byte_begin, std::uint64_t byte_end, void* out) const;

  // Copies many ranges of one tensor's decoded bytes, as read_range would
  // one by one, sorted by `begin` and not overlapping: range i to
  // `out + ranges[i].target`. For the slices of a raw tensor (the rows of a
  // column, say) it costs far less than a read_range each: the ranges are
  // copied straight from the file, every block they touch verified once
  // while its bytes are in the cache, with no system call and no thread
  // hand-off per range. An encoded tensor decodes range by range. Unsorted,
  // overlapping or out-of-tensor ranges are an ArgumentError.
  template <class = void>
  void read_ranges(std::string_view name, const std::vector<ByteRangeCopy>& ranges, void* out) const;

  // Checks every checksum (even with verify_checksums off): every block, each
  // tensor's whole stored and decoded checksums; decodes every encoded
  // tensor. In an incremental checkpoint, the same for each referenced
  // tensor in the file storing it, and the content hash of each: the whole
  // chain this checkpoint needs. Throws IntegrityError / CodecError naming
  // file and tensor, IoError naming a missing file of the chain.
  template <class = void>
  void verify() const;

 private:
  template <class = void>
  void verify_record(std::size_t index) const {
    const detail::TensorRecord& record = records_[index];
    const std::byte* stored = checked_stored_bytes(index, true, true);
    // A v2 read checks the blocks; the whole checksum is verify()'s alone.
    if (record.block_checksummed) check_whole_stored(index, stored);
    if (!record.encoded()) return;
    std::vector<std::byte> decoded(byte_size(record.dtype, record.shape));
    decode_into(index, decoded.data(), true);
  }

  template <class = void>
  const detail::TensorReference* reference_of(std::string_view name) const {
    const auto found = reference_index_.find(name);
    return found == reference_index_.end() ? nullptr : &chain_->references[found->second];
  }

  // The open file storing a referenced tensor, checked to be the file the
  // reference means: the header checksum recorded for it, and a tensor of
  // the name, dtype, shape and content hash recorded. Opened once; a failure
  // to open is reported on every read that needs the file.
  template <class = void>
  const Reader& source_of(const detail::TensorReference& reference) const {
    const Reader& source = open_source(reference.source);
    const auto index = source.index_.find(reference.source_tensor);
    const auto hash = source.content_hashes_.find(reference.source_tensor);
    if (!index || hash == source.content_hashes_.end() || hash->second != reference.hash ||
        source.records_[*index].dtype != reference.dtype || source.records_[*index].shape != reference.shape) {
      throw IntegrityError(ErrorId::integrity_reference, source.path(), reference.source_tensor,
                           detail::join({"expected the tensor '", path_, "' references as '", reference.name, "', ",
                                         dtype_name(reference.dtype), " ", shape_to_string(reference.shape),
                                         " of xxh128 ", detail::content_hash_to_hex(reference.hash),
                                         ", found no stored tensor of that name, dtype, shape and content"}));
    }
    return source;
  }

  // The content hash this file records for a tensor it stores or references.
  template <class = void>
  std::optional<detail::ContentHash> content_hash_of(std::string_view name) const {
    const auto stored = content_hashes_.find(std::string(name));
    if (stored != content_hashes_.end()) return stored->second;
    if (const auto* reference = reference_of(name)) return reference->hash;
    return std::nullopt;
  }

  // An xor-delta tensor (docs/format.md, section 8): XORs the decoded bytes
  // [begin, end) at `out` with the same bytes of its base, read (verified)
  // from the file of the chain holding it, piece by piece.
  template <class = void>
  void apply_delta_base(std::size_t index, std::uint64_t begin, std::uint64_t end, std::byte* out) const {
    const detail::TensorRecord& record = records_[index];
    // The header parser saw to it that every xor-delta tensor has its base.
    const detail::DeltaBase& delta = chain_->deltas[delta_index_.find(record.name)->second];
    const Reader& source = open_source(delta.source);
    const TensorInfo* base = source.find(delta.base_tensor);
    if (base == nullptr || source.content_hash_of(delta.base_tensor) != delta.base_hash ||
        base->dtype != record.dtype || base->shape != record.shape) {
      throw IntegrityError(ErrorId::integrity_reference, source.path(), delta.base_tensor,
                           detail::join({"expected the base of xor-delta tensor '", record.name, "' of '", path_, "', ",
                                         dtype_name(record.dtype), " ", shape_to_string(record.shape), " of xxh128 ",
                                         detail::content_hash_to_hex(delta.base_hash),
                                         ", found no tensor of that name, dtype, shape and content"}));
    }
    constexpr std::uint64_t piece_bytes = std::uint64_t(4) << 20;
    std::vector<std::byte> piece(static_cast<std::size_t>(std::min(piece_bytes, end - begin)));
    for (std::uint64_t at = begin; at < end; at += piece_bytes) {
      const std::uint64_t size = std::min(piece_bytes, end - at);
      source.read_range(delta.base_tensor, at, at + size, piece.data());
      std::byte* target = out + (at - begin);
      for (std::uint64_t i = 0; i < size; ++i) target[i] ^= piece[i];
    }
  }

  // A file of the chain, checked to be the one this file was saved with: the
  // header checksum recorded for it. Opened once; a failure to open is
  // reported on every read that needs the file.
  template <class = void>
  const Reader& open_source(std::size_t number) const {
    const detail::ChainFile& file = chain_->sources[number];
    LazySource& slot = sources_[number];
    std::call_once(slot.once, [&] {
      const std::string source_path = (std::filesystem::path(path_).parent_path() / file.file).generic_string();
      try {
        slot.reader = std::make_shared<const Reader>(source_path, options_);
        if (slot.reader->header_xxh3_ != file.header_xxh3) {
          throw IntegrityError(ErrorId::integrity_reference, source_path, "",
                               detail::join({"expected the file '", path_, "' references, with header xxh3 ",
                                             detail::checksum_to_hex(file.header_xxh3), ", found header xxh3 ",
                                             detail::checksum_to_hex(slot.reader->header_xxh3_),
                                             " (the file was replaced or rewritten since)"}));
        }
      } catch (...) {
        slot.reader = nullptr;
        slot.failure = std::current_exception();
      }
    });
    if (slot.failure) std::rethrow_exception(slot.failure);
    return *slot.reader;
  }

  template <class = void>
  std::size_t index_of(std::string_view name) const {
    const auto found = index_.find(name);
    if (!found) {
      throw MismatchError(ErrorId::mismatch_missing_tensor, path_, std::string(name),
                          detail::join({"expected a tensor of this name, found none among the ", records_.size(),
                                        " tensors of the file"}));
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
      throw IntegrityError(
          ErrorId::integrity_tensor_checksum, path_, record.name,
          detail::join({"checksum mismatch: expected xxh3 ", detail::checksum_to_hex(record.stored_xxh3), " of the ",
                        record.stored_bytes(), " stored bytes, found ", detail::checksum_to_hex(found)}));
    }
  }

  // Copies ranges of a raw tensor's bytes (sorted, disjoint: read_ranges) to
  // `out`. With verification, a v1 tensor is checked whole first; in a v2
  // file each thread takes a block the ranges touch, hashes it piece by piece
  // and copies the ranges' part of each piece while it is in the cache, so
  // the bytes come from memory once; blocks no range touches are not read.
  // When a block fails its check, `out` may hold some of its bytes: the read
  // throws.
  template <class = void>
  void copy_stored(std::size_t index, const std::vector<ByteRangeCopy>& ranges, std::byte* out) const {
    if (ranges.empty() || ranges.front().begin == ranges.back().end) return;
    const detail::TensorRecord& record = records_[index];
    const bool by_block =
        options_.verify_checksums && record.block_checksummed && !verified_[index].load(std::memory_order_acquire);
    const std::byte* stored = checked_stored_bytes(index, options_.verify_checksums && !by_block, false);
    advise_ranges(record, ranges);
    // The ranges' parts within stored bytes [from, to): ranges are sorted and
    // disjoint, so their ends are sorted too.
    const auto copy_parts = [&](std::uint64_t from, std::uint64_t to) {
      auto range =
          std::partition_point(ranges.begin(), ranges.end(), [from](const ByteRangeCopy& r) { return r.end <= from; });
      for (; range != ranges.end() && range->begin < to; ++range) {
        const std::uint64_t part_begin = std::max(range->begin, from), part_end = std::min(range->end, to);
        if (part_begin < part_end) {
          std::memcpy(out + range->target + (part_begin - range->begin), stored + part_begin, part_end - part_begin);
        }
      }
    };
    const std::uint64_t begin = ranges.front().begin, end = ranges.back().end;
    // Pieces of a copy without blocks to check: large enough that a thread's
    // share is worth waking it, small enough that both cores take part.
    constexpr std::uint64_t copy_piece_bytes = std::uint64_t(4) << 20;
    const std::pair<std::size_t, std::size_t> touched =
        by_block ? detail::blocks_touching(record, begin, end)
                 : std::pair<std::size_t, std::size_t>(0, detail::chunk_count(end - begin, copy_piece_bytes));
    detail::parallel_for(touched.second - touched.first, options_.threads, [&](std::size_t i) {
      if (!by_block) {
        const std::uint64_t from = begin + i * copy_piece_bytes;
        copy_parts(from, std::min(from + copy_piece_bytes, end));
        return;
      }
      const std::size_t block = touched.first + i;
      const detail::StoredSpan span = detail::block_span(record, block);
      const auto first = std::partition_point(ranges.begin(), ranges.end(),
                                              [&span](const ByteRangeCopy& r) { return r.end <= span.begin; });
      if (first == ranges.end() || first->begin >= span.end) return;  // between the ranges: not read
      if (blocks_.verified(index, block)) {
        copy_parts(span.begin, span.end);
        return;
      }
      detail::Xxh3Stream hash;
      for (std::uint64_t piece = span.begin; piece < span.end; piece += detail::cache_resident_bytes) {
        const std::uint64_t piece_end = std::min<std::uint64_t>(piece + detail::cache_resident_bytes, span.end);
        hash.update(stored + piece, piece_end - piece);
        copy_parts(piece, piece_end);
      }
      blocks_.check(index, record, block, hash.digest(), path_);
    });
  }

  // Tells the kernel which of a raw tensor's bytes are about to be read: the
  // runs of ranges with small gaps between them (a gap smaller than a disk
  // read is read anyway), so that a cold file streams in at the disk's speed
  // without reading what lies far between the ranges.
  template <class = void>
  void advise_ranges(const detail::TensorRecord& record, const std::vector<ByteRangeCopy>& ranges) const {
    constexpr std::uint64_t small_gap_bytes = std::uint64_t(64) << 10;
    std::uint64_t run_begin = ranges.front().begin, run_end = ranges.front().end;
    for (const ByteRangeCopy& range : ranges) {
      if (range.begin > run_end + small_gap_bytes) {
        file_->will_read(data_start_ + record.begin + run_begin, run_end - run_begin);
        run_begin = range.begin;
      }
      run_end = range.end;
    }
    file_->will_read(data_start_ + record.begin + run_begin, run_end - run_begin);
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
  template <class = void>
  const Codec& codec_for(std::size_t index) const {
    const detail::TensorRecord& record = records_[index];
    LazyCodec& slot = codecs_[codec_of_[index]];
    std::call_once(slot.once, [&] {
      try {
        // An xor-delta tensor's chunks are shuffle+zstd frames of the XOR.
        slot.codec =
            CodecRegistry::instance().make(record.codec == detail::xor_delta_codec ? "shuffle+zstd" : record.codec);
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
    if (record.codec == detail::xor_delta_codec) apply_delta_base(index, 0, raw_bytes, out);
    const std::uint64_t found = verify ? detail::xxh3(out, raw_bytes) : record.raw_xxh3;
    if (found != record.raw_xxh3) {
      throw IntegrityError(ErrorId::integrity_tensor_checksum, path_, record.name,
                           detail::join({"checksum mismatch after decoding with codec '", record.codec,
                                         "': expected xxh3 ", detail::checksum_to_hex(record.raw_xxh3), " of the ",
                                         raw_bytes, " decoded bytes, found ", detail::checksum_to_hex(found)}));
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
  // Incremental checkpoints: the chain, the content hashes of stored tensors,
  // referenced tensors by name (index into chain_->references) and the files
  // storing them, opened on first use.
  std::optional<detail::ChainInfo> chain_;
  std::map<std::string, detail::ContentHash> content_hashes_;
  std::uint64_t header_xxh3_ = 0;
  std::map<std::string, std::size_t, std::less<>> reference_index_;
  std::map<std::string, std::size_t, std::less<>> delta_index_;  // xor-delta tensors: index into chain_->deltas
  struct LazySource {
    std::once_flag once;
    std::shared_ptr<const Reader> reader;
    std::exception_ptr failure;
  };
  mutable std::vector<LazySource> sources_;
  mutable std::vector<std::atomic<bool>> verified_;  // per record: every checksum it has was verified
  detail::BlockVerifier<> blocks_;                   // v2 files: which blocks were verified

  struct LazyCodec {
    std::once_flag once;
    std::shared_ptr<const Codec> codec;  // null when the registry could not make it
    std::string problem;                 // then: why
  };
  static constexpr std::size_t no_codec = static_cast<std::size_t>(-1);
  std::vector<std::size_t> codec_of_;      // per record: its entry in codecs_, or no_codec for raw tensors
  mutable std::vector<LazyCodec> codecs_;  // one per codec name the file uses
};

// The bodies of Reader's public templates. In the optional compiled mode
// (CKPT_COMPILED, README "Compile time") a program sees only the
// declarations above: src/compiled.cpp instantiates these once, so the
// program neither parses these bodies nor compiles the reader they reach
// (the private members above are templates that only these call).
#ifndef CKPT_COMPILED

template <class>
Reader::Reader(const std::string& path, ReadOptions options)
    : path_(path), options_(options), file_(std::make_shared<detail::MappedFile>(path)) {
  detail::ParsedHeader header = detail::HeaderParser(path, file_->data(), file_->size()).parse();
  data_start_ = header.data_start;
  format_version_ = header.format_version;
  metadata_ = std::move(header.user_metadata);
  raw_metadata_ = std::move(header.raw_metadata);
  records_ = std::move(header.tensors);
  index_ = std::move(header.index);  // views the names of records_, which never change after this
  chain_ = std::move(header.chain);
  content_hashes_ = std::move(header.content_hashes);
  header_xxh3_ = header.header_xxh3;
  verified_ = std::vector<std::atomic<bool>>(records_.size());
  codec_of_.assign(records_.size(), no_codec);
  std::map<std::string_view, std::size_t> codec_numbers;
  infos_.reserve(records_.size());
  for (std::size_t i = 0; i < records_.size(); ++i) {
    const detail::TensorRecord& record = records_[i];
    infos_.push_back(TensorInfo{record.name,
                                record.dtype,
                                record.shape,
                                record.codec,
                                record.stored_bytes(),
                                data_start_ + record.begin,
                                record.checksummed,
                                {}});
    verified_[i].store(false, std::memory_order_relaxed);
    if (record.encoded()) codec_of_[i] = codec_numbers.emplace(record.codec, codec_numbers.size()).first->second;
  }
  codecs_ = std::vector<LazyCodec>(codec_numbers.size());
  blocks_ = detail::BlockVerifier<>(records_);
  if (chain_) {
    sources_ = std::vector<LazySource>(chain_->sources.size());
    for (std::size_t i = 0; i < chain_->deltas.size(); ++i) delta_index_.emplace(chain_->deltas[i].name, i);
    for (std::size_t i = 0; i < chain_->references.size(); ++i) {
      const detail::TensorReference& reference = chain_->references[i];
      infos_.push_back(TensorInfo{reference.name, reference.dtype, reference.shape, "reference", 0, 0, true,
                                  chain_->sources[reference.source].file});
      reference_index_.emplace(reference.name, i);
    }
  }
}

template <class>
Tensor Reader::tensor(std::string_view name) const {
  if (const auto* reference = reference_of(name)) return source_of(*reference).tensor(reference->source_tensor);
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

template <class>
void Reader::read_into(std::string_view name, void* out, std::uint64_t out_size) const {
  if (const auto* reference = reference_of(name)) {
    source_of(*reference).read_into(reference->source_tensor, out, out_size);
    return;
  }
  const std::size_t index = index_of(name);
  const detail::TensorRecord& record = records_[index];
  const std::uint64_t expected = byte_size(record.dtype, record.shape);
  if (out_size != expected) {
    throw ArgumentError(ErrorId::argument_invalid, path_, record.name,
                        detail::join({"expected an output buffer of ", expected, " bytes, found ", out_size}));
  }
  if (record.encoded()) {
    decode_into(index, static_cast<std::byte*>(out), options_.verify_checksums);
  } else {
    copy_stored(index, {{0, expected, 0}}, static_cast<std::byte*>(out));
  }
}

template <class>
void Reader::read_range(std::string_view name, std::uint64_t byte_begin, std::uint64_t byte_end, void* out) const {
  if (const auto* reference = reference_of(name)) {
    source_of(*reference).read_range(reference->source_tensor, byte_begin, byte_end, out);
    return;
  }
  const std::size_t index = index_of(name);
  const detail::TensorRecord& record = records_[index];
  const std::uint64_t size = byte_size(record.dtype, record.shape);
  if (byte_begin > byte_end || byte_end > size) {
    throw ArgumentError(ErrorId::argument_invalid, path_, record.name,
                        detail::join({"expected a byte range within the tensor's ", size, " bytes, found [", byte_begin,
                                      ", ", byte_end, ")"}));
  }
  if (byte_begin == 0 && byte_end == size) {
    read_into(name, out, size);
    return;
  }
  if (byte_begin == byte_end) return;
  auto* target = static_cast<std::byte*>(out);
  if (!record.encoded()) {
    copy_stored(index, {{byte_begin, byte_end, 0}}, target);
    return;
  }
  const bool by_block = options_.verify_checksums && record.block_checksummed;
  const std::byte* stored = checked_stored_bytes(index, options_.verify_checksums && !by_block, false);
  detail::decode_chunk_range(codec_for(index), stored, record.stored_bytes(), record.chunk_sizes, record.chunk_bytes,
                             dtype_size(record.dtype), size, byte_begin, byte_end, target, options_.threads, path_,
                             record.name, chunk_check(index, stored, by_block));
  if (record.codec == detail::xor_delta_codec) apply_delta_base(index, byte_begin, byte_end, target);
}

template <class>
void Reader::read_ranges(std::string_view name, const std::vector<ByteRangeCopy>& ranges, void* out) const {
  if (const auto* reference = reference_of(name)) {
    source_of(*reference).read_ranges(reference->source_tensor, ranges, out);
    return;
  }
  const std::size_t index = index_of(name);
  const detail::TensorRecord& record = records_[index];
  const std::uint64_t size = byte_size(record.dtype, record.shape);
  for (std::size_t i = 0; i < ranges.size(); ++i) {
    const std::uint64_t floor = i == 0 ? 0 : ranges[i - 1].end;
    if (ranges[i].begin < floor || ranges[i].begin > ranges[i].end || ranges[i].end > size) {
      throw ArgumentError(ErrorId::argument_invalid, path_, record.name,
                          detail::join({"expected sorted, disjoint byte ranges within the tensor's ", size,
                                        " bytes, found range ", i, " [", ranges[i].begin, ", ", ranges[i].end,
                                        ") after [", i == 0 ? 0 : ranges[i - 1].begin, ", ", floor, ")"}));
    }
  }
  auto* target = static_cast<std::byte*>(out);
  if (!record.encoded()) {
    copy_stored(index, ranges, target);
    return;
  }
  for (const ByteRangeCopy& range : ranges) read_range(name, range.begin, range.end, target + range.target);
}

template <class>
void Reader::verify() const {
  detail::parallel_for(records_.size(), options_.threads, [&](std::size_t index) { verify_record(index); });
  if (!chain_) return;
  for (const detail::TensorReference& reference : chain_->references) {
    const Reader& source = source_of(reference);
    source.verify_record(source.index_of(reference.source_tensor));
    std::vector<std::byte> decoded(byte_size(reference.dtype, reference.shape));
    source.read_into(reference.source_tensor, decoded.data(), decoded.size());
    const detail::ContentHash found = detail::content_hash(decoded.data(), decoded.size());
    if (found != reference.hash) {
      throw IntegrityError(
          ErrorId::integrity_reference, source.path(), reference.source_tensor,
          detail::join({"expected the content '", path_, "' references as tensor '", reference.name, "', xxh128 ",
                        detail::content_hash_to_hex(reference.hash), ", found ", detail::content_hash_to_hex(found)}));
    }
  }
}

#endif  // CKPT_COMPILED

}  // namespace ckpt

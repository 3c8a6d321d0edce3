#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/policy.hpp"
#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/write/content_hashing.hpp"
#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/detail/write/pipeline.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/incremental.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct SaveOptions {
  CodecPolicy codecs{"raw"};
  std::size_t chunk_bytes = std::size_t(4) << 20;  // raw bytes per codec chunk
  unsigned threads = 0;                            // encode threads; 0 = hardware_concurrency
  bool durable = true;                             // fsync file and directory
  IncrementalOptions incremental;                  // a parent to reference unchanged tensors in (incremental.hpp)
};

struct SaveStats {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;      // logical (decoded) bytes of all tensors
  std::uint64_t referenced_bytes = 0;  // of those, the bytes an incremental save referenced instead of writing
  double seconds = 0;
};

namespace detail {
template <class = void>
SaveStats write_content_plan(const std::string& path, const std::vector<NamedTensor>& stored,
                             const nlohmann::json& metadata, const SaveOptions& options, const ContentPlan& content,
                             const std::vector<std::size_t>* by_name = nullptr);
template <class = void>
std::optional<SaveStats> write_while_hashing(const std::string& path, const std::vector<NamedTensor>& tensors,
                                             const nlohmann::json& metadata, const SaveOptions& options,
                                             const ParentIndex& parent, const std::vector<std::size_t>& by_name);
}  // namespace detail

// Writes `tensors` and the JSON object `metadata` to `path` as a ckpt
// checkpoint (docs/format.md). Atomic: the bytes go to a temp file in the
// target directory, which is fsynced, renamed over `path` and the directory
// fsynced (without `durable`, only renamed). On failure the temp file is
// removed and an existing file at `path` stays untouched.
//
// Streaming, in bounded memory: the header's space is reserved first (its
// numbers at their widest), the data buffer is written in file order while
// worker threads checksum and encode the chunks ahead of the disk
// (write/pipeline.hpp), and the header is written last, padded with spaces to
// the reserved size. Raw tensors are written straight from the caller's
// memory, never copied; beyond the header, a save holds at most
// `threads + 1` chunks of encoded or gathered bytes at once, whatever the
// state's size. (A template only so that programs that never save do not
// compile it.)
//
// With options.incremental (incremental.hpp), the tensors are hashed and
// those the parent holds are referenced instead of written
// (write/incremental.hpp, docs/format.md section 8). Given a parent (and no
// xor-delta), the tensors seen to have changed by their first block are
// written while the rest are hashed (detail::write_while_hashing).
template <class = void>
SaveStats write_checkpoint(const std::string& path, const std::vector<NamedTensor>& tensors,
                           const nlohmann::json& metadata, const SaveOptions& options = {}) {
  const auto start = std::chrono::steady_clock::now();
  if (!metadata.is_object() && !metadata.is_null()) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected metadata to be a JSON object, found " + std::string(metadata.type_name()));
  }
  if (options.chunk_bytes == 0 || options.chunk_bytes > detail::max_chunk_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected chunk_bytes between 1 and " + std::to_string(detail::max_chunk_bytes) + ", found " +
                            std::to_string(options.chunk_bytes));
  }
  const std::vector<std::size_t> by_name = detail::check_tensor_arguments(path, tensors);
  // An incremental save stores only what its parent does not hold already.
  detail::ContentPlan content;
  if (!options.incremental.parent.empty() && !options.incremental.xor_delta) {
    detail::check_chain_policy(path, options.incremental);
    const detail::ParentIndex parent = detail::read_parent(path, options.incremental);
    if (std::optional<SaveStats> stats =
            detail::write_while_hashing(path, tensors, metadata, options, parent, by_name)) {
      stats->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      return *stats;
    }
    detail::ContentPlan hashed;
    hashed.hashed = true;
    content = detail::reference_parent_contents(
        std::move(hashed), tensors, detail::content_hashes_of(tensors, options.threads), parent, options.incremental);
  } else {
    content = detail::plan_content(path, tensors, options.incremental, options.threads);
  }
  SaveStats stats = content.hashed ? detail::write_content_plan(path, content.stored, metadata, options, content)
                                   : detail::write_content_plan(path, tensors, metadata, options, content, &by_name);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

namespace detail {

// What `build` returns (a header or its size), its errors as the save of `path`'s.
template <class Build>
auto header_of(const std::string& path, Build build) -> decltype(build()) {
  try {
    return build();
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected metadata strings in UTF-8, found: " + std::string(error.what()));
  } catch (const ArgumentError& error) {
    error.rethrow_with(path);
  }
}

// Writes the header of `records` (in file order, offsets filled in) into the
// `data_start` bytes the save reserved for it.
template <class = void>
void write_reserved_header(AtomicFile& file, const std::string& path, const std::vector<TensorRecord>& records,
                           const nlohmann::json& user_metadata, std::uint64_t data_start, const HeaderExtras& extras) {
  const std::string header = header_of(path, [&] { return build_header(records, user_metadata, data_start, extras); });
  if (header.size() != data_start) {
    // reserved_header_bytes prints every number at its widest; a header that
    // does not fit would overwrite data, so it must never be written.
    throw IoError(ErrorId::io_write, path, "",
                  "expected a header of at most " + std::to_string(data_start) + " reserved bytes, found " +
                      std::to_string(header.size()) + " (a ckpt bug: please report it)");
  }
  file.write_at(0, header.data(), header.size());
}

// Writes `stored`, the tensors a ContentPlan leaves to store (all of them
// for a save without one), with the header records `content` adds; the
// arguments are checked. `by_name`: the positions of `stored` sorted by
// name when the caller has them, or null. A distributed save plans its
// content across ranks (distributed/incremental.hpp) and writes each rank's
// file through here.
template <class>
SaveStats write_content_plan(const std::string& path, const std::vector<NamedTensor>& stored,
                             const nlohmann::json& metadata, const SaveOptions& options, const ContentPlan& content,
                             const std::vector<std::size_t>* by_name) {
  const auto start = std::chrono::steady_clock::now();
  const detail::HeaderExtras extras = content.header_extras();
  detail::CodecCache<> codecs;
  detail::FileLayout plan =
      detail::plan_tensors(path, stored, options.codecs, options.chunk_bytes, codecs, content.bases, by_name);
  const nlohmann::json& user_metadata = metadata.is_null() ? nlohmann::json(nlohmann::json::value_t::object) : metadata;
  const std::uint64_t data_start =
      header_of(path, [&] { return detail::reserved_header_bytes(plan.records, user_metadata, extras); });

  detail::AtomicFile file(path);
  SaveStats stats;
  const std::uint64_t data_bytes =
      detail::SavePipeline<>(file, data_start, plan, options.chunk_bytes, options.threads, path).run();
  write_reserved_header(file, path, plan.records, user_metadata, data_start, extras);
  file.commit(options.durable);
  stats.file_bytes = data_start + data_bytes;
  for (const NamedTensor& tensor : stored) stats.tensor_bytes += tensor.view.nbytes();
  stats.tensor_bytes += content.referenced_bytes;
  stats.referenced_bytes = content.referenced_bytes;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

// An incremental save that writes while it hashes. The parent's header
// gives the checksum of each block of the raw tensors it stores: a tensor
// whose first block matches none of the first blocks of the parent's
// contents of its dtype and shape has changed, whatever its content hash,
// and one of a dtype and shape the parent holds no content of as well. Those
// are written (in the format's order among themselves) while the workers
// hash the rest of the state; after the last hash, the other tensors the
// parent does not hold follow them, and the header goes last into space
// reserved for any outcome (header_bound). The early tensors come first
// only if no tensor that may follow has a larger stored element size, so
// every raw tensor stays on a multiple of its element size.
//
// Returns nullopt, having written nothing, for tensors of less than 64 KiB
// on average: the bound reserves a few hundred bytes per tensor beyond the
// header an outcome needs, more than 1% of such a state, and a save of small
// tensors has little to write while hashing anyway.
template <class>
std::optional<SaveStats> write_while_hashing(const std::string& path, const std::vector<NamedTensor>& tensors,
                                             const nlohmann::json& metadata, const SaveOptions& options,
                                             const ParentIndex& parent, const std::vector<std::size_t>& by_name) {
  constexpr std::uint64_t min_average_bytes = std::uint64_t(64) << 10;
  std::uint64_t total_bytes = 0;
  for (const NamedTensor& tensor : tensors) total_bytes += tensor.view.nbytes();
  if (tensors.empty() || total_bytes / tensors.size() < min_average_bytes) return std::nullopt;

  // Which tensors the parent may hold, and whose first block tells.
  const std::map<DTypeShape, FirstBlocks> first_blocks = parent_first_blocks(parent.header);
  std::vector<char> may_be_held(tensors.size(), 0);
  std::vector<std::size_t> first_block_bytes(tensors.size(), 0);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& view = tensors[i].view;
    const auto first = first_blocks.find(DTypeShape(view.dtype(), view.shape()));
    if (first == first_blocks.end()) continue;
    may_be_held[i] = 1;
    if (first->second.known && view.nbytes() > first->second.block_bytes) {
      first_block_bytes[i] = first->second.block_bytes;
    }
  }

  const nlohmann::json& user_metadata = metadata.is_null() ? nlohmann::json(nlohmann::json::value_t::object) : metadata;
  CodecCache<> codecs;
  std::vector<TensorRecord> bound_records =
      plan_tensors(path, tensors, options.codecs, options.chunk_bytes, codecs, {}, &by_name).records;
  for (TensorRecord& record : bound_records) {
    if (!record.encoded()) record.begin = record.end = std::numeric_limits<std::uint64_t>::max();
  }
  const HeaderExtras bound_extras =
      header_bound(tensors, may_be_held, parent, options.incremental.parent).header_extras();
  const std::uint64_t data_start =
      header_of(path, [&] { return reserved_header_bytes(bound_records, user_metadata, bound_extras); });

  AtomicFile file(path);
  ContentHashing<> hashing(tensors, first_block_bytes);
  std::vector<char> early(tensors.size(), 0);
  FileLayout early_layout;
  std::uint64_t early_bytes = 0;
  hashing.run(options.threads, [&] {
    hashing.wait_for_first_blocks();
    std::vector<char> changed(tensors.size(), 0);
    std::vector<std::size_t> element_sizes(tensors.size());
    std::size_t largest_other = 0;  // the largest stored element size of the tensors not known changed
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const TensorView& view = tensors[i].view;
      if (!may_be_held[i]) {
        changed[i] = 1;
      } else if (first_block_bytes[i] != 0) {
        const std::vector<std::uint64_t>& known = first_blocks.at(DTypeShape(view.dtype(), view.shape())).xxh3;
        changed[i] = std::find(known.begin(), known.end(), hashing.first_block_xxh3(i)) == known.end();
      }
      element_sizes[i] = stored_element_size(tensors[i], chosen_codec(path, tensors[i], options.codecs, codecs));
      if (!changed[i]) largest_other = std::max(largest_other, element_sizes[i]);
    }
    std::vector<NamedTensor> early_tensors;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      early[i] = changed[i] && element_sizes[i] >= largest_other;
      if (early[i]) early_tensors.push_back(tensors[i]);
    }
    early_layout = plan_tensors(path, early_tensors, options.codecs, options.chunk_bytes, codecs);
    // The early raw tensors the pipeline would checksum from memory get their
    // checksums from the pass that hashes their content instead.
    std::map<std::string_view, std::size_t> position;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      if (early[i]) position.emplace(tensors[i].name, i);
    }
    std::vector<TensorRecord*> checksummed(tensors.size(), nullptr);
    for (std::size_t at = 0; at < early_layout.records.size(); ++at) {
      TensorSource& source = early_layout.sources[at];
      TensorRecord& record = early_layout.records[at];
      const std::size_t i = position.at(record.name);
      if (source.codec == nullptr && !gathered_tensor(source, options.chunk_bytes) &&
          (first_block_bytes[i] == 0 || first_block_bytes[i] == record.block_bytes)) {
        source.checksummed_elsewhere = true;
        checksummed[i] = &record;
      }
    }
    hashing.start_rests(std::move(checksummed));
    if (early_tensors.empty()) return;
    early_bytes = SavePipeline<>(file, data_start, early_layout, options.chunk_bytes, options.threads, path).run();
    // The disk takes the early bytes while the workers hash.
    if (options.durable) file.sync_written();
  });

  ContentPlan hashed;
  hashed.hashed = true;
  const ContentPlan content =
      reference_parent_contents(std::move(hashed), tensors, hashing.hashes(), parent, options.incremental);
  // The stored tensors not written early; content.stored keeps the order of `tensors`.
  std::vector<NamedTensor> rest;
  for (std::size_t i = 0, k = 0; i < tensors.size() && k < content.stored.size(); ++i) {
    if (tensors[i].name != content.stored[k].name) continue;
    if (!early[i]) rest.push_back(content.stored[k]);
    ++k;
  }
  FileLayout rest_layout = plan_tensors(path, rest, options.codecs, options.chunk_bytes, codecs);
  const std::uint64_t rest_bytes =
      SavePipeline<>(file, data_start + early_bytes, rest_layout, options.chunk_bytes, options.threads, path).run();
  std::vector<TensorRecord>& records = early_layout.records;
  for (TensorRecord& record : rest_layout.records) {
    record.begin += early_bytes;
    record.end += early_bytes;
    records.push_back(std::move(record));
  }
  write_reserved_header(file, path, records, user_metadata, data_start, content.header_extras());
  file.commit(options.durable);

  SaveStats stats;
  stats.file_bytes = data_start + early_bytes + rest_bytes;
  stats.tensor_bytes = total_bytes;
  stats.referenced_bytes = content.referenced_bytes;
  return stats;
}

}  // namespace detail

}  // namespace ckpt

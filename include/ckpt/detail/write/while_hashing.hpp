#pragma once

// How a save writes its header into the space it reserved, and an
// incremental save that writes the tensors it sees changed while it hashes
// the rest (docs/format.md, section 8). Templates only so that programs that
// never save do not compile them.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/content_hashing.hpp"
#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/detail/write/pipeline.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// What `build` returns (a header or its size), its errors as the save of `path`'s.
template <class Build>
auto header_of(const std::string& path, Build build) -> decltype(build()) {
  try {
    return build();
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        join({"expected metadata strings in UTF-8, found: ", error.what()}));
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
                  join({"expected a header of at most ", data_start, " reserved bytes, found ", header.size(),
                        " (a ckpt bug: please report it)"}));
  }
  file.write_at(0, header.data(), header.size());
}

// What a save wrote, for its SaveStats.
struct SavedBytes {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;
  std::uint64_t referenced_bytes = 0;
};

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
// `options` is a SaveOptions (writer.hpp, which includes this header).
template <class Options, class Void>
Deferred<std::optional<SavedBytes>, Void> write_while_hashing(const std::string& path,
                                                              const std::vector<NamedTensor>& tensors,
                                                              const nlohmann::json& metadata, const Options& options,
                                                              const ParentIndex<Void>& parent,
                                                              const std::vector<std::size_t>& by_name) {
  constexpr std::uint64_t min_average_bytes = std::uint64_t(64) << 10;
  std::uint64_t total_bytes = 0;
  for (const NamedTensor& tensor : tensors) total_bytes += tensor.view.nbytes();
  if (tensors.empty() || total_bytes / tensors.size() < min_average_bytes) return std::nullopt;

  // Which tensors the parent may hold, and whose first block tells.
  const FirstBlocksByShape<Void> first_blocks = parent_first_blocks<Void>(parent.header);
  std::vector<char> may_be_held(tensors.size(), 0);
  std::vector<std::size_t> first_block_bytes(tensors.size(), 0);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& view = tensors[i].view;
    const auto first = first_blocks.find({view.dtype(), view.shape()});
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
      header_bound(tensors, may_be_held, parent, options.incremental.parent.path()).header_extras();
  const std::uint64_t data_start =
      header_of(path, [&] { return reserved_header_bytes(bound_records, user_metadata, bound_extras); });

  AtomicFile file(path);
  if (options.durable) file.write_back_as_written();
  ContentHashing<Void> hashing(tensors, first_block_bytes);
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
        const std::vector<std::uint64_t>& known = first_blocks.at({view.dtype(), view.shape()}).xxh3;
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
    Deferred<std::map<std::string_view, std::size_t>, Void> position;
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

  ContentPlan<Void> hashed;
  hashed.hashed = true;
  const ContentPlan<Void> content =
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

  return SavedBytes{data_start + early_bytes + rest_bytes, total_bytes, content.referenced_bytes};
}

}  // namespace ckpt::detail

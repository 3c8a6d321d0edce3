#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/save_options.hpp"
#include "ckpt/tensor.hpp"

// What a save runs. In the optional compiled mode (CKPT_COMPILED, README
// "Compile time") a program sees only write_checkpoint's declaration, and
// src/compiled.cpp, which compiles the save once, all of it.
#ifndef CKPT_COMPILED
#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/detail/write/pipeline.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/detail/write/planned_save.hpp"
#include "ckpt/detail/write/while_hashing.hpp"
#endif

namespace ckpt {

// Documented at its definition below.
template <class = void>
SaveStats write_checkpoint(const std::string& path, const std::vector<NamedTensor>& tensors,
                           const nlohmann::json& metadata, const SaveOptions& options = {});

#ifndef CKPT_COMPILED

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
// (write/incremental.hpp, docs/format.md section 8): detail::save_against_parent,
// which only programs that assign a parent compile.
template <class Void>
SaveStats write_checkpoint(const std::string& path, const std::vector<NamedTensor>& tensors,
                           const nlohmann::json& metadata, const SaveOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (!metadata.is_object() && !metadata.is_null()) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        detail::join({"expected metadata to be a JSON object, found ", metadata.type_name()}));
  }
  if (options.chunk_bytes == 0 || options.chunk_bytes > detail::max_chunk_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        detail::join({"expected chunk_bytes between 1 and ", detail::max_chunk_bytes, ", found ",
                                      options.chunk_bytes}));
  }
  const std::vector<std::size_t> by_name = detail::check_tensor_arguments(path, tensors);
  const detail::SaveRequest request{path, tensors, metadata, options, by_name, start};
  // An incremental save stores only what its parent does not hold already.
  if (!options.incremental.parent.empty()) return detail::ParentAccess::save(request);
  return detail::write_planned(request,
                               detail::plan_content<Void>(path, tensors, options.incremental, options.threads));
}

namespace detail {

// Writes `stored`, the tensors a ContentPlan leaves to store (all of them
// for a save without one), with the header records `content` adds; the
// arguments are checked. `by_name`: the positions of `stored` sorted by
// name when the caller has them, or null. A distributed save plans its
// content across ranks (distributed/incremental.hpp) and writes each rank's
// file through here.
template <class Void>
SaveStats write_content_plan(const std::string& path, const std::vector<NamedTensor>& stored,
                             const nlohmann::json& metadata, const SaveOptions& options,
                             const ContentPlan<Void>& content, const std::vector<std::size_t>* by_name, DataSync sync) {
  const auto start = std::chrono::steady_clock::now();
  const detail::HeaderExtras extras = content.header_extras();
  detail::CodecCache<> codecs;
  detail::FileLayout plan =
      detail::plan_tensors(path, stored, options.codecs, options.chunk_bytes, codecs, content.bases, by_name);
  const nlohmann::json& user_metadata = metadata.is_null() ? nlohmann::json(nlohmann::json::value_t::object) : metadata;
  const std::uint64_t data_start =
      header_of(path, [&] { return detail::reserved_header_bytes(plan.records, user_metadata, extras); });

  detail::AtomicFile file(path);
  if (options.durable || sync == DataSync::by_caller) file.write_back_as_written();
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

}  // namespace detail

#endif  // CKPT_COMPILED

}  // namespace ckpt

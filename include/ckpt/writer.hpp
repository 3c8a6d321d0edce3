#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codecs/policy.hpp"
#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct SaveOptions {
  CodecPolicy codecs{"raw"};
  std::size_t chunk_bytes = std::size_t(4) << 20;  // raw bytes per codec chunk
  unsigned threads = 0;                           // encode threads; 0 = hardware_concurrency
  bool durable = true;                            // fsync file and directory
};

struct SaveStats {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;  // logical (decoded) bytes of all tensors
  double seconds = 0;
};

// Writes `tensors` and the JSON object `metadata` to `path` as a ckpt
// checkpoint (docs/format.md). Atomic: the bytes go to a temp file in the
// target directory, which is fsynced, renamed over `path` and the directory
// fsynced (without `durable`, only renamed). On failure the temp file is
// removed and an existing file at `path` stays untouched. Raw tensors are
// written straight from the caller's memory, never copied. (A template only
// so that programs that never save do not compile it.)
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
  detail::check_tensor_arguments(path, tensors);
  const std::vector<detail::PlannedTensor> plan = detail::plan_tensors(path, tensors, options.codecs, {options.chunk_bytes, options.threads});

  std::vector<detail::TensorRecord> records;
  records.reserve(plan.size());
  for (const detail::PlannedTensor& planned : plan) records.push_back(planned.record);
  std::string header;
  try {
    header = detail::build_header(records, metadata.is_null() ? nlohmann::json::object() : metadata);
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected metadata strings in UTF-8, found: " + std::string(error.what()));
  } catch (const ArgumentError& error) {
    error.rethrow_with(path);
  }

  detail::AtomicFile file(path);
  file.write(header.data(), header.size());
  SaveStats stats;
  stats.file_bytes = header.size();
  for (const detail::PlannedTensor& planned : plan) {
    file.write(planned.stored, planned.record.stored_bytes());
    stats.file_bytes += planned.record.stored_bytes();
  }
  file.commit(options.durable);
  for (const NamedTensor& tensor : tensors) stats.tensor_bytes += tensor.view.nbytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace ckpt

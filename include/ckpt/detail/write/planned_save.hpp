#pragma once

// A save from its content plan (write_planned), and the save against a
// parent that plans one (save_against_parent), which only programs that
// assign IncrementalOptions::parent compile (incremental.hpp).

#include <chrono>
#include <utility>

#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/detail/write/while_hashing.hpp"
#include "ckpt/incremental.hpp"
#include "ckpt/save_options.hpp"

namespace ckpt::detail {

// Writes what `content` leaves to store: the tensors it kept when it hashed
// them, else all of them.
template <class Void>
SaveStats write_planned(const SaveRequest& request, const ContentPlan<Void>& content) {
  SaveStats stats = content.hashed
                        ? write_content_plan(request.path, content.stored, request.metadata, request.options, content)
                        : write_content_plan(request.path, request.tensors, request.metadata, request.options, content,
                                             &request.by_name);
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - request.start).count();
  return stats;
}

// A save against IncrementalOptions::parent (the function a ParentCheckpoint
// stores). Without xor-deltas, the tensors seen to have changed by their
// first block are written while the rest are hashed (write_while_hashing).
template <class Void>
SaveStats save_against_parent(const SaveRequest& request) {
  const IncrementalOptions& incremental = request.options.incremental;
  check_chain_policy(request.path, incremental);
  const ParentIndex<Void> parent = read_parent<Void>(request.path, incremental);
  if (!incremental.xor_delta) {
    if (const auto written = write_while_hashing(request.path, request.tensors, request.metadata, request.options,
                                                 parent, request.by_name)) {
      SaveStats stats;
      stats.file_bytes = written->file_bytes;
      stats.tensor_bytes = written->tensor_bytes;
      stats.referenced_bytes = written->referenced_bytes;
      stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - request.start).count();
      return stats;
    }
  }
  ContentPlan<Void> hashed;
  hashed.hashed = true;
  return write_planned(
      request, reference_parent_contents(std::move(hashed), request.tensors,
                                         content_hashes_of<Void>(request.tensors, request.options.threads), parent,
                                         incremental));
}

}  // namespace ckpt::detail

#pragma once

// Distributed checkpoint directories as things on disk: reading a committed
// checkpoint's index (what tools such as `ckpt info` show), finding the
// committed checkpoints of a run, and removing one safely.

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/file_names.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/verify.hpp"
#include "ckpt/detail/text.hpp"

namespace ckpt {

// What model.safetensors.index.json records (docs/distributed.md).
using DistributedIndex = detail::CheckpointIndex;
using DistributedTensorInfo = detail::IndexTensor;
using DistributedPieceInfo = detail::IndexPiece;

// The index file's name inside a checkpoint directory.
inline constexpr const char* distributed_index_name = detail::distributed_index_file;

// The index of the committed checkpoint in `directory`. A directory without
// one throws StateError state_uncommitted; a damaged index FormatError.
template <class = void>
DistributedIndex read_distributed_index(const std::string& directory) {
  return detail::read_index_of(detail::trimmed_directory(directory));
}

// True when `directory` holds a committed checkpoint (its index exists).
template <class = void>
bool is_committed_checkpoint(const std::string& directory) {
  return detail::path_exists(detail::index_path_of(detail::trimmed_directory(directory)));
}

// True when `directory` holds what a distributed save writes (rank files or
// their temp files) but no index: a save that never committed.
template <class = void>
bool is_uncommitted_checkpoint(const std::string& directory) {
  const std::string path = detail::trimmed_directory(directory);
  return !is_committed_checkpoint(path) && !detail::checkpoint_files_in(path).empty();
}

struct CommittedCheckpoint {
  std::string directory;
  std::uint64_t step = 0;
};

// The committed checkpoints in the directories directly under `parent`,
// oldest step first. Uncommitted ones are left out.
template <class = void>
std::vector<CommittedCheckpoint> committed_checkpoints(const std::string& parent) {
  std::vector<CommittedCheckpoint> found;
  const std::string root = detail::trimmed_directory(parent);
  for (const std::string& name : detail::directory_names(root)) {
    const std::string directory = detail::join({root, "/", name});
    if (!detail::is_directory(directory) || !is_committed_checkpoint(directory)) continue;
    found.push_back({directory, read_distributed_index(directory).step});
  }
  std::sort(found.begin(), found.end(), [](const CommittedCheckpoint& a, const CommittedCheckpoint& b) {
    return a.step != b.step ? a.step < b.step : a.directory < b.directory;
  });
  return found;
}

// What verify_distributed_checkpoint found: per file, and for the index and
// the pieces; ok() when nothing is wrong.
using DistributedVerification = detail::DistributedVerification;

// Reads and checks everything a distributed checkpoint holds: the index
// (whose pieces must tile every tensor without gap or overlap), every file
// (its size and header checksum as the index recorded them, every tensor's
// checksum, every encoded tensor decoded) and every piece (in its file with
// the dtype, shape, codec and checksum the index records). Never throws for
// what it finds: each problem is one error message.
template <class = void>
DistributedVerification verify_distributed_checkpoint(const std::string& directory) {
  return detail::verify_directory(detail::trimmed_directory(directory));
}

// Removes a checkpoint directory, the index first: a crash halfway leaves an
// uncommitted directory, never a committed one missing files. Files that
// are not the checkpoint's stay (and keep the directory).
template <class = void>
void remove_distributed_checkpoint(const std::string& directory, bool durable = true) {
  detail::remove_checkpoint_directory(detail::trimmed_directory(directory), durable);
}

}  // namespace ckpt

#pragma once

// Incremental checkpoints in a CheckpointManager (docs/manager.md,
// "Incremental saves"): which committed checkpoint a save references, and
// retention that never breaks a chain. A rotation's doomed checkpoints are
// swept only when no kept checkpoint reaches them: a mark from the kept
// checkpoints along the files their references are read from (each file's
// `ckpt.chain` sources), transitively, so that a kept file stays loadable
// and so does every file it needs. Deleting only unreachable files keeps
// collection crash-safe without a log: whatever subset of the deletions a
// kill leaves done, every kept checkpoint still has all its sources, and an
// unreachable file left over is swept by the next rotation.
// Templates only so that programs without a CheckpointManager do not compile
// them.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/error.hpp"
#include "ckpt/manager_policies.hpp"

namespace ckpt::detail {

inline std::string normalized_path(const std::string& path) {
  return std::filesystem::absolute(std::filesystem::path(path)).lexically_normal().string();
}

// Whether the header of a checkpoint reads.
template <class = void>
bool header_readable(const std::string& path) {
  try {
    const MappedFile file(path);
    HeaderParser<>(path, file.data(), file.size()).parse();
    return true;
  } catch (const Error&) {
    return false;
  }
}

// The checkpoint an incremental save of `step` references: the newest
// committed one before it, if `readable(path)` (its header, or a distributed
// checkpoint's index, reads). Nullopt (a full save) otherwise.
template <class Readable>
std::optional<std::string> incremental_parent(const std::vector<CheckpointInfo>& checkpoints, std::uint64_t step,
                                              Readable&& readable) {
  const CheckpointInfo* parent = nullptr;
  for (const CheckpointInfo& info : checkpoints) {
    if (info.step < step && (!parent || info.step > parent->step)) parent = &info;
  }
  if (!parent || !readable(parent->path)) return std::nullopt;
  return parent->path;
}

template <class = void>
std::optional<std::string> incremental_parent(const std::vector<CheckpointInfo>& checkpoints, std::uint64_t step) {
  return incremental_parent(checkpoints, step, [](const std::string& path) { return header_readable(path); });
}

// The files a checkpoint file reads referenced bytes from (its `ckpt.chain`
// sources), as lexically normal paths. Throws what reading its header throws.
template <class = void>
std::vector<std::string> chain_sources_of_file(const std::string& path) {
  const MappedFile file(path);
  const ParsedHeader header = HeaderParser<>(path, file.data(), file.size()).parse();
  std::vector<std::string> sources;
  if (!header.chain) return sources;
  const std::filesystem::path directory = std::filesystem::path(path).parent_path();
  for (const ChainFile& source : header.chain->sources) {
    sources.push_back((directory / source.file).lexically_normal().string());
  }
  return sources;
}

// Of the `doomed` steps of `checkpoints`, those no kept checkpoint reaches
// along the chain: the ones a rotation may delete. `sources_of(path)` lists
// what a checkpoint needs (as lexically normal paths; a distributed
// checkpoint's are directories). A kept checkpoint that is damaged cannot be
// loaded, so it marks nothing; one that could not be read (an IoError, maybe
// passing) might need anything, so then nothing is deleted: the next
// rotation collects it.
template <class SourcesOf>
std::vector<std::uint64_t> unreachable_checkpoints(const std::vector<CheckpointInfo>& checkpoints,
                                                   const std::vector<std::uint64_t>& doomed, SourcesOf&& sources_of) {
  if (doomed.empty()) return doomed;
  const std::set<std::uint64_t> doomed_steps(doomed.begin(), doomed.end());
  std::vector<std::string> to_visit;
  for (const CheckpointInfo& info : checkpoints) {
    if (doomed_steps.count(info.step) == 0) to_visit.push_back(normalized_path(info.path));
  }
  std::set<std::string> reached(to_visit.begin(), to_visit.end());
  while (!to_visit.empty()) {
    const std::string path = to_visit.back();
    to_visit.pop_back();
    std::vector<std::string> sources;
    try {
      sources = sources_of(path);
    } catch (const IoError&) {
      return {};
    } catch (const Error&) {
      continue;
    }
    for (const std::string& source : sources) {
      if (reached.insert(source).second) to_visit.push_back(source);
    }
  }
  std::vector<std::uint64_t> unreachable;
  for (const CheckpointInfo& info : checkpoints) {
    if (doomed_steps.count(info.step) != 0 && reached.count(normalized_path(info.path)) == 0) {
      unreachable.push_back(info.step);
    }
  }
  return unreachable;
}

template <class = void>
std::vector<std::uint64_t> unreachable_checkpoints(const std::vector<CheckpointInfo>& checkpoints,
                                                   const std::vector<std::uint64_t>& doomed) {
  return unreachable_checkpoints(checkpoints, doomed, chain_sources_of_file<>);
}

}  // namespace ckpt::detail

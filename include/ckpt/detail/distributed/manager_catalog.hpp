#pragma once

// The directory a CheckpointManager keeps distributed checkpoints in: one
// checkpoint directory per step, named by the manager's template, beside the
// manager's dotfiles. A step exists when its directory is committed (holds
// its index); its facts (time, epoch, metrics) are the manager's record in
// the index's metadata, its size the sum of its files. Pins live in the
// manager's own index (.ckpt-index.json), as for single files.
//
// Deleting a step is crash-safe: its directory is first renamed to a dotted
// name (out of every listing: no template starts with '.'), the parent is
// fsynced, and only then are its files removed. A crash at any point leaves
// either the committed step, untouched, or a dotted leftover that the next
// writer removes, never a step that looks committed with files missing.
// Every file call goes through the FileSystem seam.

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/manager/checkpoint_catalog.hpp"
#include "ckpt/detail/manager/checkpoint_naming.hpp"
#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/manager_policies.hpp"

namespace ckpt::detail {

// "." + step directory name + this: a step directory being deleted.
inline constexpr std::string_view removing_suffix = ".removing";

// The step directory `name` if `entry` is one being deleted, else nothing.
inline std::optional<std::string> removed_step_name(std::string_view entry) {
  if (entry.size() <= 1 + removing_suffix.size() || entry.front() != '.' ||
      entry.substr(entry.size() - removing_suffix.size()) != removing_suffix) {
    return std::nullopt;
  }
  return std::string(entry.substr(1, entry.size() - 1 - removing_suffix.size()));
}

// Facts of a committed step directory from its index, or nothing when the
// directory is not committed (no index) or its index cannot be read.
template <class = void>
std::optional<CheckpointInfo> read_step_directory(const std::string& path, std::uint64_t step) {
  if (!path_exists(index_path_of(path))) return std::nullopt;
  CheckpointInfo info;
  info.step = step;
  info.path = path;
  try {
    const CheckpointIndex index = read_index_of(path);
    for (const auto& file : index.files) info.bytes += file.second.bytes;
    if (const auto record = index.metadata.find(manager_metadata_key); record != index.metadata.end()) {
      apply_record(*record, info);
    }
  } catch (const Error&) {
    // A damaged index still names a step: listed, so that a restore reports
    // it as skipped and retention counts it, rather than hidden.
  }
  struct stat status {};
  if (file_system().stat(index_path_of(path).c_str(), &status) == 0) {
    info.bytes += static_cast<std::uint64_t>(status.st_size);
    if (info.time == 0) info.time = static_cast<double>(status.st_mtime);
  }
  return info;
}

// The committed step directories of `naming` in `directory`, oldest step
// first, with the pins the manager's index records.
template <class = void>
std::vector<CheckpointInfo> scan_step_directories(const std::string& directory, const CheckpointNaming<>& naming) {
  const std::map<std::string, CheckpointInfo> known = read_index(directory);
  std::vector<CheckpointInfo> steps;
  for (const std::string& name : directory_names(directory)) {
    const std::optional<ParsedCheckpointName> parsed = naming.parse(name);
    if (!parsed) continue;
    const std::string path = join({directory, "/", name});
    if (!is_directory(path)) continue;
    std::optional<CheckpointInfo> info = read_step_directory(path, parsed->step);
    if (!info) continue;
    if (!info->epoch) info->epoch = parsed->epoch;
    if (info->metrics.empty()) info->metrics = parsed->metrics;
    const auto fact = known.find(name);
    info->pinned = fact != known.end() && fact->second.pinned;
    steps.push_back(std::move(*info));
  }
  std::sort(steps.begin(), steps.end(),
            [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
  return steps;
}

// Deletes the step directory `path` crash-safely (see the top of this file).
template <class = void>
void delete_step_directory(const std::string& path, bool durable) {
  const std::string parent = directory_of(path);
  const std::string dotted = join({parent, "/.", file_name_of(path), removing_suffix});
  if (path_exists(dotted)) remove_checkpoint_directory(dotted, durable);
  if (file_system().rename(path.c_str(), dotted.c_str()) != 0) {
    throw_system_error(ErrorId::io_rename, path, join({"rename to '", dotted, "' before deleting it"}), errno);
  }
  if (durable) fsync_directory(parent);
  remove_checkpoint_directory(dotted, durable);
}

// The checkpoint directories a committed step reads referenced bytes from
// (its index's chain sources), as lexically normal paths: what retention
// must keep along with it (manager/chain_retention.hpp). Throws what
// reading its index throws.
template <class = void>
std::vector<std::string> chain_sources_of_directory(const std::string& path) {
  const CheckpointIndex index = read_index_of(path);
  std::vector<std::string> sources;
  if (!index.chain) return sources;
  for (const std::string& source : index.chain->sources) {
    sources.push_back((std::filesystem::path(path) / source).lexically_normal().string());
  }
  return sources;
}

// What a killed job left in `directory`: step directories renamed for
// deletion, step directories whose save never committed, and temp files of
// the manager's index. Run by the writer when it starts, under the lock.
template <class = void>
void remove_step_leftovers(const std::string& directory, const CheckpointNaming<>& naming, bool durable) {
  for (const std::string& name : directory_names(directory)) {
    const std::string path = join({directory, "/", name});
    if (const std::optional<std::string> removed = removed_step_name(name)) {
      if (naming.parse(*removed) && is_directory(path)) remove_checkpoint_directory(path, durable);
    } else if (naming.parse(name) && is_directory(path) && !path_exists(index_path_of(path))) {
      remove_checkpoint_directory(path, durable);
    }
  }
  remove_stale_temp_files(directory, naming);
}

// Checkpoint facts as they cross between ranks: the manager's index entries.
template <class = void>
std::string encode_checkpoints(const std::vector<CheckpointInfo>& checkpoints) {
  nlohmann::json list = nlohmann::json::array();
  for (const CheckpointInfo& info : checkpoints) {
    nlohmann::json entry = checkpoint_record(info);
    entry["path"] = info.path;
    entry["bytes"] = info.bytes;
    entry["pinned"] = info.pinned;
    list.push_back(std::move(entry));
  }
  return list.dump();
}

template <class = void>
std::vector<CheckpointInfo> decode_checkpoints(const std::string& text) {
  std::string problem;
  const nlohmann::json list = parse_strict_json(text, max_header_depth, text.size(), problem).value();
  std::vector<CheckpointInfo> checkpoints;
  for (const nlohmann::json& entry : list) {
    CheckpointInfo info;
    info.step = entry.at("step").get<std::uint64_t>();
    info.path = entry.at("path").get<std::string>();
    info.bytes = entry.at("bytes").get<std::uint64_t>();
    info.pinned = entry.at("pinned").get<bool>();
    apply_record(entry, info);
    checkpoints.push_back(std::move(info));
  }
  return checkpoints;
}

}  // namespace ckpt::detail

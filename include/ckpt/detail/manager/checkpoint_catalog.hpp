#pragma once

// What checkpoints a manager's directory holds and the facts about each.
// The directory is the truth: a checkpoint exists when a file with a name of
// the manager's naming exists. Its facts (step, epoch, time, metrics) are
// recorded twice: in the checkpoint's own metadata, and in a dotfile index
// that spares reading every file's header. The index is only a cache: when it
// is lost or stale, the facts are read back from the files. The functions
// are templates only so that programs without a CheckpointManager do not
// compile them (see "Compile time" in docs/architecture.md).

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/manager/checkpoint_naming.hpp"
#include "ckpt/detail/manager/retention.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/manager_policies.hpp"
#include "ckpt/reader.hpp"

namespace ckpt::detail {

inline constexpr const char* index_file_name = ".ckpt-index.json";
// Key of the manager's record in a checkpoint's user metadata.
inline constexpr const char* manager_metadata_key = "ckpt.manager";

// The facts a checkpoint carries about itself (no path, size or pin: those
// belong to the directory). The index's functions are templates on Json (always
// nlohmann::json) so that only programs that run a manager compile their
// JSON code (see "Compile time" in docs/architecture.md).
template <class Json = nlohmann::json>
Json checkpoint_record(const CheckpointInfo& info) {
  Json record = {{"step", info.step}, {"time", info.time}, {"metrics", Json::object()}};
  if (info.epoch) record["epoch"] = *info.epoch;
  for (const auto& [name, value] : info.metrics) {
    // JSON has no NaN or infinity; such a metric is left out rather than stored as null.
    if (std::isfinite(value)) record["metrics"][name] = value;
  }
  return record;
}

// Reads the fields of a record that are present and well-typed; anything else
// is ignored, since a damaged record must not make the directory unlistable.
template <class Json = nlohmann::json>
void apply_record(const Json& record, CheckpointInfo& info) {
  if (!record.is_object()) return;
  if (const auto time = record.find("time"); time != record.end() && time->is_number())
    info.time = time->template get<double>();
  if (const auto epoch = record.find("epoch"); epoch != record.end() && epoch->is_number_unsigned()) {
    info.epoch = epoch->template get<std::uint64_t>();
  }
  if (const auto metrics = record.find("metrics"); metrics != record.end() && metrics->is_object()) {
    for (const auto& metric : metrics->items()) {
      if (metric.value().is_number()) info.metrics[metric.key()] = metric.value().template get<double>();
    }
  }
}

// The index's text, or nothing when it cannot be read whole. The index is a
// cache: whatever keeps it from being read (missing, unreadable, changed
// while read) only means the facts are read back from the checkpoints.
inline std::optional<std::string> read_index_text(const std::string& path) {
  try {
    return read_whole_file(path);
  } catch (const IoError&) {
    return std::nullopt;
  }
}

// Index entries by file name.
template <class Json = nlohmann::json>
std::map<std::string, CheckpointInfo> read_index(const std::string& directory) {
  std::map<std::string, CheckpointInfo> entries;
  const std::optional<std::string> text = read_index_text(join({directory, "/", index_file_name}));
  if (!text) return entries;
  // Read with the parser that reads headers, so that a program compiles one
  // JSON parser; an index it refuses is as good as a lost one.
  std::string problem;
  const std::optional<Json> index = parse_strict_json<Json>(*text, max_header_depth, text->size(), problem);
  if (!index || !index->is_object()) return entries;
  const auto checkpoints = index->find("checkpoints");
  if (checkpoints == index->end() || !checkpoints->is_array()) return entries;
  for (const Json& entry : *checkpoints) {
    if (!entry.is_object() || !entry.contains("file") || !entry["file"].is_string() || !entry.contains("bytes") ||
        !entry["bytes"].is_number_unsigned()) {
      continue;
    }
    CheckpointInfo info;
    info.bytes = entry["bytes"].template get<std::uint64_t>();
    info.pinned = entry.value("pinned", false);
    apply_record(entry, info);
    entries[entry["file"].template get<std::string>()] = info;
  }
  return entries;
}

template <class Json = nlohmann::json>
void write_index(const std::string& directory, const std::vector<CheckpointInfo>& checkpoints, bool durable) {
  Json list = Json::array();
  for (const CheckpointInfo& info : checkpoints) {
    Json entry = checkpoint_record<Json>(info);
    entry["file"] = file_name_of(info.path);
    entry["bytes"] = info.bytes;
    entry["pinned"] = info.pinned;
    list.push_back(std::move(entry));
  }
  const std::string text = join({Json{{"version", 1}, {"checkpoints", std::move(list)}}.dump(1), "\n"});
  AtomicFile file(join({directory, "/", index_file_name}));
  file.write(text.data(), text.size());
  file.commit(durable);
}

// Facts of a checkpoint the index does not know: from its own metadata, or,
// when its header is unreadable, from its name and modification time (a
// restore reports such a file as skipped).
template <class = void>
void read_facts_from_file(CheckpointInfo& info, std::int64_t modification_time) {
  info.time = static_cast<double>(modification_time);
  try {
    const Reader reader(info.path, ReadOptions{false, 1});
    if (const auto record = reader.metadata().find(manager_metadata_key); record != reader.metadata().end()) {
      apply_record(*record, info);
    }
  } catch (const Error&) {
  }
}

// The checkpoints of `naming` in `directory`, sorted by step. `known` holds
// facts already known by file name (the index, a save just committed); they
// are trusted only for a file of the recorded size.
template <class = void>
std::vector<CheckpointInfo> scan_checkpoints(const std::string& directory, const CheckpointNaming<>& naming,
                                             const std::map<std::string, CheckpointInfo>& known) {
  std::vector<CheckpointInfo> checkpoints;
  for (const std::string& name : directory_names(directory)) {
    const std::optional<ParsedCheckpointName> parsed = naming.parse(name);
    if (!parsed) continue;
    const std::string path = join({directory, "/", name});
    struct stat status {};
    if (file_system().stat(path.c_str(), &status) != 0) {
      if (errno == ENOENT) continue;  // removed since the listing, by another process's rotation
      throw_system_error(ErrorId::io_read, path, "stat", errno);
    }
    if (!S_ISREG(status.st_mode)) continue;
    CheckpointInfo info;
    const auto fact = known.find(name);
    if (fact != known.end() && fact->second.bytes == static_cast<std::uint64_t>(status.st_size)) {
      info = fact->second;
    } else {
      info.path = path;
      info.metrics = parsed->metrics;
      info.epoch = parsed->epoch;
      read_facts_from_file(info, status.st_mtime);
    }
    info.step = parsed->step;
    info.path = path;
    info.bytes = static_cast<std::uint64_t>(status.st_size);
    checkpoints.push_back(std::move(info));
  }
  sort_by_step(checkpoints);
  return checkpoints;
}

// Sets the pin of `step` among `checkpoints` (of `directory`); throws
// StateError when none has that step.
template <class = void>
void set_pin(std::vector<CheckpointInfo>& checkpoints, std::uint64_t step, bool pinned, const std::string& directory) {
  bool found = false;
  for (CheckpointInfo& info : checkpoints) {
    if (info.step != step) continue;
    info.pinned = pinned;
    found = true;
  }
  if (!found) {
    throw StateError(ErrorId::state_not_found, directory, "",
                     join({"cannot pin step ", step, ": expected a checkpoint of that step, found none"}));
  }
}

// What a manager opened read-only refuses to do.
inline void require_writable(bool read_only, const std::string& directory, const char* action) {
  if (read_only) {
    throw StateError(ErrorId::state_locked, directory, "",
                     join({"cannot ", action, ": the manager was opened read-only"}));
  }
}

// The error of a restore that found checkpoints but none usable (`reasons`:
// why each was skipped); `expected` says what was looked for.
[[noreturn]] inline void throw_no_valid_checkpoint(const std::string& directory, const std::string& expected,
                                                   std::size_t candidates, const std::vector<std::string>& reasons) {
  std::string found = "none";
  if (candidates != 0) {
    found = join({candidates, " unusable:"});
    for (const std::string& reason : reasons) found += join({"\n  ", reason});
  }
  throw StateError(ErrorId::state_not_found, directory, "", join({"expected ", expected, ", found ", found}));
}

// Removes what a save killed midway left behind: temp files of this naming or of the index.
template <class = void>
void remove_stale_temp_files(const std::string& directory, const CheckpointNaming<>& naming) {
  for (const std::string& name : directory_names(directory)) {
    if (!is_temp_file_name(name)) continue;
    const std::string final_name = name.substr(1, name.rfind(temp_marker) - 1);
    if (final_name == index_file_name || naming.parse(final_name)) remove_file(join({directory, "/", name}));
  }
}

}  // namespace ckpt::detail

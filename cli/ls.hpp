#pragma once

// ckpt ls DIR [--template T] [--json]: the checkpoints a CheckpointManager
// or a DistributedCheckpointManager keeps in DIR, as the managers themselves
// list them (read-only: no lock taken, nothing cleaned), with step, epoch,
// time, size, ranks (of a distributed checkpoint), metrics and status.

#include <algorithm>
#include <cstdint>
#include <ctime>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "ckpt/distributed/communicator.hpp"
#include "ckpt/distributed/directory.hpp"
#include "ckpt/distributed/manager.hpp"
#include "ckpt/manager.hpp"
#include "common.hpp"
#include "table.hpp"

namespace ckpt::cli {

inline std::string utc_time(double seconds) {
  const auto time = static_cast<std::time_t>(seconds);
  std::tm parts{};
  gmtime_r(&time, &parts);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S", &parts);
  return text;
}

// The read-only manager options of the command line (--template).
inline ManagerOptions listing_options(const Arguments& args) {
  const std::string& directory = args.positionals()[0];
  if (!is_directory(directory)) throw UsageError("'" + directory + "' is not a directory");
  ManagerOptions options;
  options.read_only = true;
  if (const auto name_template = args.value("--template")) options.name_template = *name_template;
  return options;
}

// Runs `list` and turns a bad --template into a usage error.
template <class List>
auto listed_or_usage_error(List&& list) {
  try {
    return list();
  } catch (const ArgumentError& error) {
    throw UsageError(std::string("--template: ") + error.what());
  }
}

// The checkpoint files a CheckpointManager keeps in DIR.
inline std::vector<CheckpointInfo> list_checkpoints(const Arguments& args) {
  const ManagerOptions options = listing_options(args);
  return listed_or_usage_error([&] { return CheckpointManager(args.positionals()[0], options).list(); });
}

// The committed step directories a DistributedCheckpointManager keeps in DIR.
inline std::vector<CheckpointInfo> list_step_directories(const Arguments& args) {
  const ManagerOptions options = listing_options(args);
  SingleProcessCommunicator one;
  return listed_or_usage_error(
      [&] { return DistributedCheckpointManager(one, args.positionals()[0], options).list(); });
}

// A listed checkpoint: a file, or a step directory and the number of ranks that saved it.
struct ListedCheckpoint {
  CheckpointInfo info;
  std::optional<std::uint64_t> world_size;
  std::string status;  // "ok" when the header (or the index) opens; verify checks the data
};

// Both kinds, by step, with their status.
inline std::vector<ListedCheckpoint> list_for_ls(const Arguments& args) {
  std::vector<ListedCheckpoint> listed;
  const auto add = [&](CheckpointInfo info, bool step_directory) {
    ListedCheckpoint checkpoint{std::move(info), std::nullopt, ""};
    try {
      if (step_directory) {
        checkpoint.world_size = read_distributed_index(checkpoint.info.path).world_size;
      } else {
        const Reader reader(checkpoint.info.path, ReadOptions{false, 1});
      }
      checkpoint.status = checkpoint.info.pinned ? "ok, pinned" : "ok";
    } catch (const Error& error) {
      checkpoint.status = std::string("unreadable: ") + error.what();
    }
    listed.push_back(std::move(checkpoint));
  };
  for (CheckpointInfo& info : list_checkpoints(args)) add(std::move(info), false);
  for (CheckpointInfo& info : list_step_directories(args)) add(std::move(info), true);
  std::stable_sort(listed.begin(), listed.end(),
                   [](const ListedCheckpoint& a, const ListedCheckpoint& b) { return a.info.step < b.info.step; });
  return listed;
}

inline int run_ls(const Arguments& args, std::ostream& out, std::ostream& err) {
  const std::vector<ListedCheckpoint> checkpoints = list_for_ls(args);
  nlohmann::json listing = nlohmann::json::array();
  std::vector<Row> rows;
  for (const ListedCheckpoint& listed : checkpoints) {
    const CheckpointInfo& checkpoint = listed.info;
    listing.push_back({{"step", checkpoint.step},
                       {"epoch", checkpoint.epoch ? nlohmann::json(*checkpoint.epoch) : nlohmann::json()},
                       {"time", checkpoint.time},
                       {"path", checkpoint.path},
                       {"bytes", checkpoint.bytes},
                       {"world_size", listed.world_size ? nlohmann::json(*listed.world_size) : nlohmann::json()},
                       {"metrics", checkpoint.metrics},
                       {"pinned", checkpoint.pinned},
                       {"status", listed.status}});
    std::string metrics;
    for (const auto& [name, value] : checkpoint.metrics) {
      char text[64];
      std::snprintf(text, sizeof text, "%.6g", value);
      metrics += (metrics.empty() ? "" : " ") + name + "=" + text;
    }
    rows.push_back({std::to_string(checkpoint.step), checkpoint.epoch ? std::to_string(*checkpoint.epoch) : "-",
                    utc_time(checkpoint.time), human_bytes(checkpoint.bytes),
                    listed.world_size ? std::to_string(*listed.world_size) : "-", metrics.empty() ? "-" : metrics,
                    checkpoint.path, listed.status});
  }
  if (args.flag("--json")) {
    out << listing.dump(2) << "\n";
  } else if (checkpoints.empty()) {
    err << "ckpt ls: no checkpoints in '" << args.positionals()[0] << "'\n";
  } else {
    print_table(out, {"STEP", "EPOCH", "TIME (UTC)", "SIZE", "RANKS", "METRICS", "FILE", "STATUS"}, rows);
  }
  return exit_ok;
}

}  // namespace ckpt::cli

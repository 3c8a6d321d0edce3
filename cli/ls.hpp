#pragma once

// ckpt ls DIR [--template T] [--json]: the checkpoints a CheckpointManager
// keeps in DIR, as the manager itself lists them (read-only: no lock taken,
// nothing cleaned), with step, epoch, time, size, metrics and status.

#include <ctime>
#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "args.hpp"
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

// "ok" when the header opens (checksums are verify's job), else why not.
inline std::string checkpoint_status(const CheckpointInfo& checkpoint) {
  try {
    const Reader reader(checkpoint.path, ReadOptions{false, 1});
    return checkpoint.pinned ? "ok, pinned" : "ok";
  } catch (const Error& error) {
    return std::string("unreadable: ") + error.what();
  }
}

inline std::vector<CheckpointInfo> list_checkpoints(const Arguments& args) {
  const std::string& directory = args.positionals()[0];
  if (!is_directory(directory)) throw UsageError("'" + directory + "' is not a directory");
  ManagerOptions options;
  options.read_only = true;
  if (const auto name_template = args.value("--template")) options.name_template = *name_template;
  try {
    return CheckpointManager(directory, options).list();
  } catch (const ArgumentError& error) {
    throw UsageError(std::string("--template: ") + error.what());
  }
}

inline int run_ls(const Arguments& args, std::ostream& out, std::ostream& err) {
  const std::vector<CheckpointInfo> checkpoints = list_checkpoints(args);
  nlohmann::json listing = nlohmann::json::array();
  std::vector<Row> rows;
  for (const CheckpointInfo& checkpoint : checkpoints) {
    const std::string status = checkpoint_status(checkpoint);
    listing.push_back({{"step", checkpoint.step},
                       {"epoch", checkpoint.epoch ? nlohmann::json(*checkpoint.epoch) : nlohmann::json()},
                       {"time", checkpoint.time},
                       {"path", checkpoint.path},
                       {"bytes", checkpoint.bytes},
                       {"metrics", checkpoint.metrics},
                       {"pinned", checkpoint.pinned},
                       {"status", status}});
    std::string metrics;
    for (const auto& [name, value] : checkpoint.metrics) {
      char text[64];
      std::snprintf(text, sizeof text, "%.6g", value);
      metrics += (metrics.empty() ? "" : " ") + name + "=" + text;
    }
    rows.push_back({std::to_string(checkpoint.step), checkpoint.epoch ? std::to_string(*checkpoint.epoch) : "-",
                    utc_time(checkpoint.time), human_bytes(checkpoint.bytes), metrics.empty() ? "-" : metrics,
                    checkpoint.path, status});
  }
  if (args.flag("--json")) {
    out << listing.dump(2) << "\n";
  } else if (checkpoints.empty()) {
    err << "ckpt ls: no checkpoints in '" << args.positionals()[0] << "'\n";
  } else {
    print_table(out, {"STEP", "EPOCH", "TIME (UTC)", "SIZE", "METRICS", "FILE", "STATUS"}, rows);
  }
  return exit_ok;
}

}  // namespace ckpt::cli

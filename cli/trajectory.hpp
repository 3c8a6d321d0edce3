#pragma once

// ckpt trajectory RUN [--tensor GLOB]... [--stat S[,S...]]... [--template T]
// [--json]: statistics of tensors at every checkpoint of a manager's run, one
// CSV row per checkpoint (docs/cli.md), as python/ckpt/stats.py computes them.
// The run is read one checkpoint at a time and one tensor at a time; only the
// comparisons keep earlier tensors (raw ones as views of their file's mapping).

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/reader.hpp"
#include "common.hpp"
#include "ls.hpp"
#include "tensor_stats.hpp"

namespace ckpt::cli {

// The statistics of every --stat (each a comma-separated list), in the order
// given, each once; `norm` when none is given.
inline std::vector<StatSpec> requested_stats(const Arguments& args) {
  std::vector<StatSpec> stats;
  for (const std::string& list : args.values("--stat")) {
    std::size_t start = 0;
    while (true) {
      const std::size_t comma = list.find(',', start);
      const std::string name = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      const auto known =
          std::find_if(all_stats.begin(), all_stats.end(), [&](const StatSpec& spec) { return spec.name == name; });
      if (known == all_stats.end()) {
        std::string expected;
        for (const StatSpec& spec : all_stats) expected += (expected.empty() ? "" : ", ") + std::string(spec.name);
        throw UsageError("--stat: unknown statistic '" + name + "'; expected " + expected);
      }
      const bool repeated =
          std::any_of(stats.begin(), stats.end(), [&](const StatSpec& spec) { return spec.stat == known->stat; });
      if (!repeated) stats.push_back(*known);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
  }
  if (stats.empty()) stats.push_back(all_stats[0]);
  return stats;
}

// The tensors of the run whose names match a glob, sorted, from the
// checkpoints' headers. A glob that matches no tensor is a usage error: it is
// more likely a typo than a question.
inline std::set<std::string> selected_tensors(const std::vector<CheckpointInfo>& checkpoints,
                                              const std::vector<std::string>& globs, const std::string& directory) {
  std::set<std::string> selected;
  std::vector<bool> matched(globs.size(), false);
  for (const CheckpointInfo& checkpoint : checkpoints) {
    const Reader reader(checkpoint.path, ReadOptions{false, 1});
    for (const TensorInfo& info : reader.tensors()) {
      for (std::size_t i = 0; i < globs.size(); ++i) {
        if (!detail::glob_match(globs[i], info.name)) continue;
        matched[i] = true;
        selected.insert(info.name);
      }
    }
  }
  for (std::size_t i = 0; i < globs.size(); ++i) {
    if (!matched[i]) {
      throw UsageError("--tensor '" + globs[i] + "' matches no tensor in the " + std::to_string(checkpoints.size()) +
                       " checkpoints of '" + directory + "'");
    }
  }
  return selected;
}

// Walks the checkpoints in order, keeping what the comparisons need: each
// tensor at the first checkpoint that holds it (dist_first) and at the
// previous one (dist_prev, changed).
class TrajectoryWalk {
 public:
  TrajectoryWalk(std::set<std::string> tensors, const std::vector<StatSpec>& stats) : tensors_(std::move(tensors)) {
    for (const StatSpec& spec : stats) {
      stats_.push_back(spec.stat);
      keep_first_ = keep_first_ || spec.stat == Stat::dist_first;
      keep_previous_ = keep_previous_ || spec.stat == Stat::dist_prev || spec.stat == Stat::changed;
    }
  }

  // The statistics of each selected tensor the checkpoint at `path` holds,
  // every checksum verified (a corrupt tensor throws, naming file and tensor).
  std::map<std::string, std::vector<double>> next(const std::string& path) {
    const Reader reader(path);
    std::map<std::string, std::vector<double>> values;
    for (const TensorInfo& info : reader.tensors()) {
      if (tensors_.count(info.name) == 0) continue;
      const Tensor current = reader.tensor(info.name);
      // The first checkpoint holding a tensor is its own reference: dist_first is 0 there.
      if (keep_first_) first_.emplace(info.name, current);
      values[info.name] = tensor_statistics(current, find(first_, info.name), find(previous_, info.name), stats_);
      if (keep_previous_) previous_.insert_or_assign(info.name, current);
    }
    return values;
  }

 private:
  static const Tensor* find(const std::map<std::string, Tensor>& tensors, const std::string& name) {
    const auto found = tensors.find(name);
    return found == tensors.end() ? nullptr : &found->second;
  }

  std::set<std::string> tensors_;
  std::vector<Stat> stats_;
  bool keep_first_ = false, keep_previous_ = false;
  std::map<std::string, Tensor> first_, previous_;
};

// A number as the shortest text that reads back as the same double; "nan"
// where there is no value (pandas, numpy and Python's float() read it).
inline std::string csv_number(double value) {
  if (std::isnan(value)) return "nan";
  char text[32];
  const std::to_chars_result written = std::to_chars(text, text + sizeof text, value);
  return std::string(text, written.ptr);
}

// A CSV field, quoted as RFC 4180 says when it holds a comma, quote or line break.
inline std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string quoted = "\"";
  for (const char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

inline void print_csv_row(std::ostream& out, const std::vector<std::string>& fields) {
  for (std::size_t i = 0; i < fields.size(); ++i) out << (i == 0 ? "" : ",") << csv_field(fields[i]);
  out << "\n";
}

inline nlohmann::json json_number(double value) {
  return std::isfinite(value) ? nlohmann::json(value) : nlohmann::json();
}

// What a trajectory reports beside step, epoch and time.
struct TrajectoryColumns {
  std::set<std::string> metrics;  // recorded at any checkpoint of the run
  std::set<std::string> tensors;  // selected by the globs
  std::vector<StatSpec> stats;
};

// step, epoch, time, the metrics, then TENSOR:STAT for each tensor and statistic.
inline std::vector<std::string> csv_header(const TrajectoryColumns& columns) {
  std::vector<std::string> header{"step", "epoch", "time"};
  header.insert(header.end(), columns.metrics.begin(), columns.metrics.end());
  for (const std::string& tensor : columns.tensors) {
    for (const StatSpec& spec : columns.stats) header.push_back(tensor + ":" + std::string(spec.name));
  }
  return header;
}

inline std::vector<std::string> csv_row(const CheckpointInfo& checkpoint, const TrajectoryColumns& columns,
                                        const std::map<std::string, std::vector<double>>& values) {
  std::vector<std::string> row{std::to_string(checkpoint.step),
                               checkpoint.epoch ? std::to_string(*checkpoint.epoch) : "nan",
                               csv_number(checkpoint.time)};
  for (const std::string& metric : columns.metrics) {
    const auto recorded = checkpoint.metrics.find(metric);
    row.push_back(csv_number(recorded == checkpoint.metrics.end() ? no_value : recorded->second));
  }
  for (const std::string& tensor : columns.tensors) {
    const auto found = values.find(tensor);
    for (std::size_t i = 0; i < columns.stats.size(); ++i) {
      row.push_back(csv_number(found == values.end() ? no_value : found->second[i]));
    }
  }
  return row;
}

// The tensors the checkpoint lacks are left out; JSON has no NaN: null.
inline nlohmann::json json_row(const CheckpointInfo& checkpoint, const TrajectoryColumns& columns,
                               const std::map<std::string, std::vector<double>>& values) {
  nlohmann::json tensors = nlohmann::json::object();
  for (const auto& [tensor, tensor_values] : values) {
    for (std::size_t i = 0; i < columns.stats.size(); ++i) {
      tensors[tensor][std::string(columns.stats[i].name)] = json_number(tensor_values[i]);
    }
  }
  return {{"step", checkpoint.step},
          {"epoch", checkpoint.epoch ? nlohmann::json(*checkpoint.epoch) : nlohmann::json()},
          {"time", checkpoint.time},
          {"path", checkpoint.path},
          {"metrics", checkpoint.metrics},
          {"tensors", std::move(tensors)}};
}

inline int run_trajectory(const Arguments& args, std::ostream& out, std::ostream& err) {
  TrajectoryColumns columns;
  columns.stats = requested_stats(args);
  std::vector<std::string> globs = args.values("--tensor");
  if (globs.empty()) globs.push_back("*");
  const std::vector<CheckpointInfo> checkpoints = list_checkpoints(args);
  const std::string& directory = args.positionals()[0];
  if (checkpoints.empty()) {
    err << "ckpt trajectory: no checkpoints in '" << directory << "'\n";
  } else {
    columns.tensors = selected_tensors(checkpoints, globs, directory);
  }
  for (const CheckpointInfo& checkpoint : checkpoints) {
    for (const auto& metric : checkpoint.metrics) columns.metrics.insert(metric.first);
  }

  const bool json = args.flag("--json");
  if (!json) print_csv_row(out, csv_header(columns));
  TrajectoryWalk walk(columns.tensors, columns.stats);
  nlohmann::json rows = nlohmann::json::array();
  for (const CheckpointInfo& checkpoint : checkpoints) {
    const std::map<std::string, std::vector<double>> values = walk.next(checkpoint.path);
    if (json) {
      rows.push_back(json_row(checkpoint, columns, values));
    } else {
      print_csv_row(out, csv_row(checkpoint, columns, values));
      out.flush();  // each row as soon as its checkpoint is read: a long run can be watched
    }
  }
  if (json) out << rows.dump(2) << "\n";
  return exit_ok;
}

}  // namespace ckpt::cli

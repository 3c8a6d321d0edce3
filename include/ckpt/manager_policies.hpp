#pragma once

// The rules a CheckpointManager follows: when to save, what to keep, and the
// facts it records about each checkpoint. Plain data, so that programs can
// build them from their own configuration.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ckpt {

// Seconds on some clock. The manager reads time only through a Clock, so tests
// can drive every time-based rule with a fake one.
using Clock = std::function<double()>;

// Wall-clock seconds since the Unix epoch: the default, because checkpoint
// times must stay comparable across restarts of the training program.
inline double system_clock_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// When a save falls due. Every rule that is switched on can trigger a save;
// rules that are off (zero or empty) never do. An explicit
// CheckpointManager::save() ignores the policy (a forced save).
struct SavePolicy {
  std::uint64_t every_steps = 0;        // steps that are multiples of N (stable across resumes)
  double every_seconds = 0;             // T seconds after the previous save (or the manager's start)
  std::vector<std::uint64_t> at_steps;  // exactly these steps
  // Installs a handler for `preemption_signals` that only sets a flag; the
  // save happens at the next step boundary. The previous handlers are called
  // too (when they are functions) and restored when the manager goes away.
  bool on_preemption = false;
  // Empty: SIGTERM and SIGUSR1 (named in detail/manager/preemption.hpp, so
  // that this plain-data header needs no OS header).
  std::vector<int> preemption_signals;
  // CheckFreq-style automatic interval: save as often as keeps the time the
  // training loop spends blocked by saves under this fraction of the wall
  // clock (e.g. 0.05 for 5%), from the measured cost of the previous save.
  // Until a save has been measured, the first opportunity is taken.
  double max_overhead = 0;
};

enum class MetricMode { min, max };

// What survives a rotation. A checkpoint is kept when any rule keeps it; the
// newest checkpoint, the one just written, the current best and pinned ones
// are never deleted, not even to meet the byte budget.
struct RetentionPolicy {
  std::size_t max_to_keep = 5;         // newest N by step; 0 keeps all
  std::uint64_t keep_every_steps = 0;  // permanent milestones: steps that are multiples of N
  double keep_every_seconds = 0;       // permanent milestones at least T seconds apart
  std::string best_metric;             // e.g. "val_loss"; empty switches best-K off
  MetricMode best_mode = MetricMode::min;
  std::size_t keep_best = 1;                // best K by best_metric
  std::uint64_t max_total_bytes = 0;        // deletes the oldest unprotected checkpoints above it; 0 = no budget
  std::vector<std::uint64_t> pinned_steps;  // never deleted (CheckpointManager::pin adds more at run time)
};

// One checkpoint in a manager's directory.
struct CheckpointInfo {
  std::uint64_t step = 0;
  std::optional<std::uint64_t> epoch;
  std::string path;
  std::uint64_t bytes = 0;
  double time = 0;  // manager clock when the save was requested
  std::map<std::string, double> metrics;
  bool pinned = false;
};

}  // namespace ckpt

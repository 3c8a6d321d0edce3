#pragma once

// Decides which checkpoints a rotation deletes: a pure function of the list,
// the policy and the step just committed, so every rule is testable alone.
// Templates only so that programs without a CheckpointManager do not compile
// them (see "Compile time" in docs/architecture.md).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <set>
#include <vector>

#include "ckpt/detail/order.hpp"
#include "ckpt/manager_policies.hpp"

namespace ckpt::detail {

template <class = void>
std::optional<double> metric_of(const CheckpointInfo& info, const std::string& metric) {
  const auto found = info.metrics.find(metric);
  if (found == info.metrics.end() || std::isnan(found->second)) return std::nullopt;
  return found->second;
}

// Indices of the checkpoints with the metric, best first (ties: newer first).
template <class = void>
std::vector<std::size_t> ranked_by_metric(const std::vector<CheckpointInfo>& sorted, const RetentionPolicy& policy) {
  std::vector<std::size_t> ranked;
  if (policy.best_metric.empty()) return ranked;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (metric_of(sorted[i], policy.best_metric)) ranked.push_back(i);
  }
  const auto better = [&](std::size_t a, std::size_t b) {
    const double left = *metric_of(sorted[a], policy.best_metric);
    const double right = *metric_of(sorted[b], policy.best_metric);
    if (left != right) return policy.best_mode == MetricMode::min ? left < right : left > right;
    return a > b;
  };
  stable_sort_positions(ranked, PositionLess(better));
  return ranked;
}

// Oldest first.
template <class = void>
void sort_by_step(std::vector<CheckpointInfo>& checkpoints) {
  stable_sort_items(checkpoints, [](const CheckpointInfo& a, const CheckpointInfo& b) { return a.step < b.step; });
}

// Milestones by time: walking from the oldest, each checkpoint at least T
// seconds after the previous milestone becomes one. Deleting the checkpoints
// in between leaves the answer unchanged, so milestones stay milestones.
template <class = void>
std::set<std::size_t> time_milestones(const std::vector<CheckpointInfo>& sorted, double every_seconds) {
  std::set<std::size_t> milestones;
  if (every_seconds <= 0) return milestones;
  std::optional<double> anchor;
  for (std::size_t i = 0; i < sorted.size(); ++i) {
    if (!anchor || sorted[i].time >= *anchor + every_seconds) {
      milestones.insert(i);
      anchor = sorted[i].time;
    }
  }
  return milestones;
}

// `checkpoints` in any order; returns the steps to delete, oldest first.
template <class = void>
std::vector<std::uint64_t> checkpoints_to_delete(std::vector<CheckpointInfo> checkpoints, const RetentionPolicy& policy,
                                                 std::optional<std::uint64_t> just_committed) {
  sort_by_step(checkpoints);
  const std::size_t count = checkpoints.size();
  if (count == 0) return {};

  const std::vector<std::size_t> ranked = ranked_by_metric(checkpoints, policy);
  std::set<std::size_t> protected_ones{count - 1};
  if (!ranked.empty()) protected_ones.insert(ranked.front());
  for (std::size_t i = 0; i < count; ++i) {
    const CheckpointInfo& info = checkpoints[i];
    const bool pinned = info.pinned || std::find(policy.pinned_steps.begin(), policy.pinned_steps.end(), info.step) !=
                                           policy.pinned_steps.end();
    if (pinned || info.step == just_committed) protected_ones.insert(i);
  }

  std::set<std::size_t> kept = protected_ones;
  const std::size_t newest_kept = policy.max_to_keep == 0 ? count : std::min(policy.max_to_keep, count);
  for (std::size_t i = count - newest_kept; i < count; ++i) kept.insert(i);
  for (std::size_t i = 0; i < std::min(std::max<std::size_t>(policy.keep_best, 1), ranked.size()); ++i) {
    kept.insert(ranked[i]);
  }
  for (std::size_t i = 0; i < count; ++i) {
    if (policy.keep_every_steps != 0 && checkpoints[i].step % policy.keep_every_steps == 0) kept.insert(i);
  }
  const std::set<std::size_t> by_time = time_milestones(checkpoints, policy.keep_every_seconds);
  kept.insert(by_time.begin(), by_time.end());

  if (policy.max_total_bytes != 0) {
    std::uint64_t total = 0;
    for (std::size_t i : kept) total += checkpoints[i].bytes;
    for (auto it = kept.begin(); it != kept.end() && total > policy.max_total_bytes;) {
      if (protected_ones.count(*it) != 0) {
        ++it;
        continue;
      }
      total -= checkpoints[*it].bytes;
      it = kept.erase(it);
    }
  }

  std::vector<std::uint64_t> doomed;
  for (std::size_t i = 0; i < count; ++i) {
    if (kept.count(i) == 0) doomed.push_back(checkpoints[i].step);
  }
  return doomed;
}

}  // namespace ckpt::detail

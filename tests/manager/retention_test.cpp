#include <gtest/gtest.h>

#include "ckpt/detail/manager/retention.hpp"

namespace {

using ckpt::CheckpointInfo;
using ckpt::MetricMode;
using ckpt::RetentionPolicy;
using ckpt::detail::checkpoints_to_delete;
using Steps = std::vector<std::uint64_t>;

// Checkpoints at the given steps, one every 10 seconds of fake time, 100 bytes each.
std::vector<CheckpointInfo> checkpoints_at(const Steps& steps) {
  std::vector<CheckpointInfo> checkpoints;
  for (std::uint64_t step : steps) {
    CheckpointInfo info;
    info.step = step;
    info.time = 1000.0 + 10.0 * static_cast<double>(checkpoints.size());
    info.bytes = 100;
    checkpoints.push_back(info);
  }
  return checkpoints;
}

void set_metric(std::vector<CheckpointInfo>& checkpoints, const std::vector<double>& values) {
  for (std::size_t i = 0; i < values.size(); ++i) checkpoints[i].metrics["loss"] = values[i];
}

TEST(Retention, MaxToKeepDeletesTheOldest) {
  RetentionPolicy policy;
  policy.max_to_keep = 2;
  EXPECT_EQ(checkpoints_to_delete(checkpoints_at({10, 20, 30, 40}), policy, 40), (Steps{10, 20}));
}

TEST(Retention, MaxToKeepZeroKeepsEverything) {
  RetentionPolicy policy;
  policy.max_to_keep = 0;
  EXPECT_TRUE(checkpoints_to_delete(checkpoints_at({10, 20, 30}), policy, 30).empty());
}

TEST(Retention, InputOrderDoesNotMatter) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  EXPECT_EQ(checkpoints_to_delete(checkpoints_at({30, 10, 20}), policy, 30), (Steps{10, 20}));
}

TEST(Retention, StepMilestonesArePermanent) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  policy.keep_every_steps = 100;
  EXPECT_EQ(checkpoints_to_delete(checkpoints_at({50, 100, 150, 200, 250}), policy, 250), (Steps{50, 150}));
}

TEST(Retention, TimeMilestonesStaySpacedAndStableAcrossRotations) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  policy.keep_every_seconds = 25;  // checkpoints are 10 s apart: times 1000, 1010, ... 1060
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({1, 2, 3, 4, 5, 6, 7});
  const Steps doomed = checkpoints_to_delete(checkpoints, policy, 7);
  EXPECT_EQ(doomed, (Steps{2, 3, 5, 6}));  // milestones at 1000, 1030, 1060 (and the newest)
  // Rotating again over what is left keeps the same milestones.
  std::vector<CheckpointInfo> left;
  for (const CheckpointInfo& info : checkpoints) {
    if (std::find(doomed.begin(), doomed.end(), info.step) == doomed.end()) left.push_back(info);
  }
  EXPECT_TRUE(checkpoints_to_delete(left, policy, 7).empty());
}

TEST(Retention, BestKByMinimumMetric) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  policy.best_metric = "loss";
  policy.keep_best = 2;
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({1, 2, 3, 4, 5});
  set_metric(checkpoints, {0.9, 0.2, 0.5, 0.1, 0.8});
  EXPECT_EQ(checkpoints_to_delete(checkpoints, policy, 5), (Steps{1, 3}));
}

TEST(Retention, BestKByMaximumMetricIgnoresCheckpointsWithoutIt) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  policy.best_metric = "loss";
  policy.best_mode = MetricMode::max;
  policy.keep_best = 1;
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({1, 2, 3, 4});
  set_metric(checkpoints, {0.9, std::nan(""), 0.5});  // step 4 has no metric
  EXPECT_EQ(checkpoints_to_delete(checkpoints, policy, 4), (Steps{2, 3}));
}

TEST(Retention, ByteBudgetDeletesOldestButNeverNewestBestOrPinned) {
  RetentionPolicy policy;
  policy.max_to_keep = 0;
  policy.max_total_bytes = 250;  // room for two and a half checkpoints
  policy.best_metric = "loss";
  policy.pinned_steps = {2};
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({1, 2, 3, 4, 5, 6});
  set_metric(checkpoints, {0.1, 0.5, 0.5, 0.5, 0.5, 0.5});
  // Protected: 1 (best), 2 (pinned), 6 (newest) = 300 bytes, over budget: they stay anyway.
  EXPECT_EQ(checkpoints_to_delete(checkpoints, policy, 6), (Steps{3, 4, 5}));
}

TEST(Retention, ByteBudgetKeepsNewestWhenRoomAllows) {
  RetentionPolicy policy;
  policy.max_to_keep = 0;
  policy.max_total_bytes = 300;
  EXPECT_EQ(checkpoints_to_delete(checkpoints_at({1, 2, 3, 4, 5}), policy, 5), (Steps{1, 2}));
}

TEST(Retention, PinnedFlagAndJustCommittedAreKept) {
  RetentionPolicy policy;
  policy.max_to_keep = 1;
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({10, 20, 30, 40});
  checkpoints[0].pinned = true;
  // Step 20 was just written after a restore to an older step: it survives
  // even though 40, from an abandoned run, is newer.
  EXPECT_EQ(checkpoints_to_delete(checkpoints, policy, 20), (Steps{30}));
}

TEST(Retention, CombinedRulesAreRespectedTogether) {
  RetentionPolicy policy;
  policy.max_to_keep = 2;
  policy.keep_every_steps = 40;
  policy.best_metric = "loss";
  policy.keep_best = 1;
  std::vector<CheckpointInfo> checkpoints = checkpoints_at({10, 20, 30, 40, 50, 60, 70});
  set_metric(checkpoints, {0.5, 0.05, 0.4, 0.3, 0.2, 0.1, 0.1});
  EXPECT_EQ(checkpoints_to_delete(checkpoints, policy, 70), (Steps{10, 30, 50}));
}

TEST(Retention, EmptyListDeletesNothing) {
  EXPECT_TRUE(checkpoints_to_delete({}, RetentionPolicy{}, std::nullopt).empty());
}

}  // namespace

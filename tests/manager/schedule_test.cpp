#include <gtest/gtest.h>

#include "ckpt/detail/manager/save_schedule.hpp"

namespace {

using ckpt::SavePolicy;
using ckpt::detail::save_due;
using ckpt::detail::ScheduleState;

ScheduleState after_save_at(std::uint64_t step, double time) {
  ScheduleState state;
  state.last_saved_step = step;
  state.last_save_end = time;
  return state;
}

TEST(SaveSchedule, NoRuleNeverSaves) { EXPECT_FALSE(save_due(SavePolicy{}, ScheduleState{}, 1, 1e9)); }

TEST(SaveSchedule, EveryNStepsSavesAtMultiples) {
  SavePolicy policy;
  policy.every_steps = 50;
  EXPECT_FALSE(save_due(policy, ScheduleState{}, 49, 0));
  EXPECT_TRUE(save_due(policy, ScheduleState{}, 50, 0));
  EXPECT_TRUE(save_due(policy, ScheduleState{}, 100, 0));
  EXPECT_FALSE(save_due(policy, after_save_at(100, 0), 100, 0));  // never twice for one step
}

TEST(SaveSchedule, EveryTSecondsCountsFromThePreviousSave) {
  SavePolicy policy;
  policy.every_seconds = 60;
  EXPECT_FALSE(save_due(policy, after_save_at(10, 1000), 11, 1059.9));
  EXPECT_TRUE(save_due(policy, after_save_at(10, 1000), 11, 1060));
}

TEST(SaveSchedule, ListedSteps) {
  SavePolicy policy;
  policy.at_steps = {7, 300};
  EXPECT_TRUE(save_due(policy, ScheduleState{}, 7, 0));
  EXPECT_FALSE(save_due(policy, ScheduleState{}, 8, 0));
  EXPECT_TRUE(save_due(policy, ScheduleState{}, 300, 0));
}

TEST(SaveSchedule, PreemptionOnlyWhenOptedIn) {
  SavePolicy policy;
  ScheduleState state;
  state.preemption_pending = true;
  EXPECT_FALSE(save_due(policy, state, 3, 0));
  policy.on_preemption = true;
  EXPECT_TRUE(save_due(policy, state, 3, 0));
}

TEST(SaveSchedule, AdaptiveTakesFirstChanceThenKeepsOverheadUnderFraction) {
  SavePolicy policy;
  policy.max_overhead = 0.1;
  EXPECT_TRUE(save_due(policy, ScheduleState{}, 1, 0));  // cost unknown: measure it
  ScheduleState state = after_save_at(1, 100);
  state.blocked_seconds = 2.0;  // 2 s blocked needs 18 s of training for 10% overhead
  EXPECT_FALSE(save_due(policy, state, 2, 117.9));
  EXPECT_TRUE(save_due(policy, state, 2, 118));
}

TEST(SaveSchedule, AdaptiveWaitsForTheBackgroundPartOfAnAsyncSave) {
  SavePolicy policy;
  policy.max_overhead = 0.5;
  ScheduleState state = after_save_at(1, 100);
  state.blocked_seconds = 0.1;
  state.background_seconds = 5;
  EXPECT_FALSE(save_due(policy, state, 2, 104));
  EXPECT_TRUE(save_due(policy, state, 2, 105));
}

TEST(SaveSchedule, RulesCombineWithOr) {
  SavePolicy policy;
  policy.every_steps = 100;
  policy.every_seconds = 30;
  policy.at_steps = {42};
  const ScheduleState state = after_save_at(0, 0);
  EXPECT_TRUE(save_due(policy, state, 42, 1));
  EXPECT_TRUE(save_due(policy, state, 100, 1));
  EXPECT_TRUE(save_due(policy, state, 43, 30));
  EXPECT_FALSE(save_due(policy, state, 43, 29));
}

}  // namespace

// CheckpointManager with `incremental`: each save references the newest
// committed checkpoint, and retention never deletes a file a kept checkpoint
// needs, whatever fails or crashes during a save and its collection.

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/manager.hpp"
#include "support/crash_states.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace {

using namespace ckpt;
using ckpt::test::ChildOutcome;
using ckpt::test::FaultFileSystem;
using ckpt::test::FsOp;
using ckpt::test::ScopedFileSystem;
using ckpt::test::TempDir;

// Frozen layers (90% of the bytes) that never change, an adapter that
// changes every step, and a head that changes at steps 5 and 6 only.
struct FineTuneState {
  std::vector<float> frozen = std::vector<float>(9000);
  std::vector<float> head = std::vector<float>(500);
  std::vector<float> adapter = std::vector<float>(500);
  std::int64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("frozen", frozen);
    ar("head", head);
    ar("adapter", adapter);
    ar("step", step);
  }
  bool operator==(const FineTuneState& other) const {
    return frozen == other.frozen && head == other.head && adapter == other.adapter && step == other.step;
  }
};

FineTuneState state_at(std::int64_t step) {
  FineTuneState state;
  for (std::size_t i = 0; i < state.frozen.size(); ++i) state.frozen[i] = 0.25f * float(i);
  const float head = step < 5 ? 1.0f : step == 5 ? 2.0f : 3.0f;
  for (std::size_t i = 0; i < state.head.size(); ++i) state.head[i] = head + float(i);
  for (std::size_t i = 0; i < state.adapter.size(); ++i) state.adapter[i] = float(step) * 0.5f + 1000.0f + float(i);
  state.step = step;
  return state;
}

ManagerOptions incremental_options(std::size_t max_to_keep) {
  ManagerOptions options;
  options.incremental = true;
  options.retention.max_to_keep = max_to_keep;
  options.save.threads = 1;
  options.save.incremental.max_chain_fraction = 1e9;  // full_every alone decides
  return options;
}

std::string checkpoint_path(const std::string& directory, std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/ckpt-%08lld.safetensors", static_cast<long long>(step));
  return directory + name;
}

std::vector<std::int64_t> steps_in(const std::string& directory) {
  std::vector<std::int64_t> steps;
  for (std::int64_t step = 0; step < 100; ++step) {
    if (std::filesystem::exists(checkpoint_path(directory, step))) steps.push_back(step);
  }
  return steps;
}

bool holds(const std::string& directory, std::int64_t step) {
  FineTuneState loaded;
  Checkpoint<FineTuneState>().load(checkpoint_path(directory, step), loaded);
  return loaded == state_at(step);
}

// max_to_keep 1 over a chain of 10: the newest checkpoint is always
// restorable, the files its references lead to stay (step 1 stores the
// frozen layers, step 6 the head from then on) and every other file goes;
// the full save that starts the next chain frees them all.
TEST(IncrementalManager, MaxToKeepOneOverAChainOfTen) {
  TempDir dir;
  CheckpointManager manager(dir.path(), incremental_options(1));
  for (std::int64_t step = 1; step <= 11; ++step) {
    SCOPED_TRACE(step);
    manager.save(std::uint64_t(step), state_at(step));
    FineTuneState restored;
    const RestoreResult result = manager.restore_latest(restored);
    EXPECT_EQ(result.checkpoint.step, std::uint64_t(step));
    EXPECT_TRUE(restored == state_at(step));
    EXPECT_EQ(Reader(checkpoint_path(dir.path(), step)).chain_depth(), std::uint64_t(step == 11 ? 0 : step - 1));
    std::vector<std::int64_t> expected{1, step};
    if (step == 1 || step == 11) expected = {step};
    if (step > 6 && step < 11) expected = {1, 6, step};
    EXPECT_EQ(steps_in(dir.path()), expected);
  }
}

// The same run with every retention rule: whatever the rules keep loads.
TEST(IncrementalManager, EveryRetentionRuleKeepsItsCheckpointsLoadable) {
  for (int rule = 0; rule < 4; ++rule) {
    SCOPED_TRACE(rule);
    TempDir dir;
    ManagerOptions options = incremental_options(rule == 0 ? 2 : 1);
    options.save.incremental.full_every = 4;
    if (rule == 1) options.retention.keep_every_steps = 3;
    if (rule == 2) {
      options.retention.best_metric = "loss";
      options.retention.keep_best = 2;
    }
    if (rule == 3) options.retention.max_total_bytes = 1;
    CheckpointManager manager(dir.path(), options);
    for (std::int64_t step = 1; step <= 12; ++step) {
      StepInfo info;
      info.metrics["loss"] = double((step * 7) % 5);  // best at steps 5 and 10
      manager.save(std::uint64_t(step), state_at(step), info);
      for (std::int64_t kept : steps_in(dir.path())) EXPECT_TRUE(holds(dir.path(), kept)) << "step " << kept;
    }
    if (rule == 1) {
      for (std::int64_t milestone : {3, 6, 9, 12}) EXPECT_TRUE(holds(dir.path(), milestone));
    }
  }
}

// Saves steps first to last incrementally with max_to_keep 1 into `directory`.
void save_steps(const std::string& directory, std::int64_t first, std::int64_t last) {
  CheckpointManager manager(directory, incremental_options(1));
  for (std::int64_t step = first; step <= last; ++step) manager.save(std::uint64_t(step), state_at(step));
}

// What a user relies on after any failure or crash of the save of step 6
// (whose parent, step 5, references step 1; its collection deletes step 5
// but must keep step 1): steps 5 or 6 restore bit-exact, every file left
// loads, and a restarted run collects what is left over.
void expect_chain_intact(const std::string& directory, const std::string& context) {
  const std::vector<std::int64_t> steps = steps_in(directory);
  ASSERT_FALSE(steps.empty()) << context;
  for (std::int64_t step : steps) EXPECT_TRUE(holds(directory, step)) << context << ": step " << step;
  const bool has_6 = std::filesystem::exists(checkpoint_path(directory, 6));
  EXPECT_TRUE(has_6 || std::filesystem::exists(checkpoint_path(directory, 5))) << context << ": lost the newest";

  CheckpointManager manager(directory, incremental_options(1));
  FineTuneState restored;
  const RestoreResult result = manager.restore_latest(restored);
  EXPECT_EQ(result.checkpoint.step, has_6 ? 6u : 5u) << context;
  EXPECT_TRUE(result.skipped.empty()) << context;
  EXPECT_TRUE(restored == state_at(has_6 ? 6 : 5)) << context;
  manager.save(7, state_at(7));
  // Step 7 references the head in step 6 when there is one, or stores it;
  // step 6 is a full save when its parent could not be read.
  std::vector<std::int64_t> expected{1, 7};
  if (has_6) {
    const bool six_full = Reader(checkpoint_path(directory, 6)).chain_depth() == 0;
    expected = six_full ? std::vector<std::int64_t>{6, 7} : std::vector<std::int64_t>{1, 6, 7};
  }
  EXPECT_EQ(steps_in(directory), expected) << context << ": garbage left";
  EXPECT_TRUE(holds(directory, 7)) << context;
}

class IncrementalManagerFaults : public ::testing::Test {
 protected:
  void SetUp() override { save_steps(committed_.path(), 1, 5); }
  std::string fresh_directory() {
    const std::string directory = work_.file("run" + std::to_string(++runs_));
    std::filesystem::copy(committed_.path(), directory, std::filesystem::copy_options::recursive);
    return directory;
  }
  TempDir committed_;
  TempDir work_;
  int runs_ = 0;
};

TEST_F(IncrementalManagerFaults, EveryFailingCallKeepsTheChainLoadable) {
  ASSERT_EQ(steps_in(committed_.path()), (std::vector<std::int64_t>{1, 5}));
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    save_steps(fresh_directory(), 6, 6);
  }
  ASSERT_GT(counting.count(FsOp::unlink), 0u) << "the save must collect step 5";
  for (FsOp op : ckpt::test::all_fs_ops) {
    for (std::uint64_t nth = 1; nth <= counting.count(op); ++nth) {
      const std::string context = std::string("failing ") + ckpt::test::fs_op_name(op) + " #" + std::to_string(nth);
      const std::string directory = fresh_directory();
      {
        FaultFileSystem fs;
        fs.fail_at(op, nth, EIO);
        ScopedFileSystem scoped(fs);
        try {
          save_steps(directory, 6, 6);
        } catch (const IoError&) {
        }
      }
      expect_chain_intact(directory, context);
    }
  }
}

TEST_F(IncrementalManagerFaults, CrashBeforeAnyCallKeepsTheChainLoadable) {
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    save_steps(fresh_directory(), 6, 6);
  }
  const std::uint64_t calls = counting.total_calls();
  for (std::uint64_t nth = 1; nth <= calls + 1; ++nth) {
    const std::string context = "crash before call #" + std::to_string(nth) + " of " + std::to_string(calls);
    const std::string directory = fresh_directory();
    const ChildOutcome outcome = ckpt::test::run_crashing_at(nth, [&] { save_steps(directory, 6, 6); });
    ASSERT_EQ(outcome, nth <= calls ? ChildOutcome::crashed : ChildOutcome::completed) << context;
    expect_chain_intact(directory, context);
  }
}

// Power loss during incremental saves with collection (the model of
// tests/support/crash_states.hpp): a small state, so that every crash state
// is checked. Steps 1 to 4 with max_to_keep 1: 2 and 3 reference step 1's
// frozen part, 3 changes the head (step 2 is collected), 4 references 1 and
// 3 (nothing more to collect).
struct SmallState {
  std::vector<float> frozen = std::vector<float>(64);
  std::vector<float> head = std::vector<float>(16);
  std::vector<float> adapter = std::vector<float>(16);
  std::int64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("frozen", frozen)("head", head)("adapter", adapter)("step", step);
  }
};

SmallState small_state_at(std::int64_t step) {
  SmallState state;
  for (std::size_t i = 0; i < state.frozen.size(); ++i) state.frozen[i] = 0.5f * float(i);
  for (std::size_t i = 0; i < state.head.size(); ++i) state.head[i] = (step < 3 ? 1.0f : 2.0f) + float(i);
  for (std::size_t i = 0; i < state.adapter.size(); ++i) state.adapter[i] = 1000.0f * float(step) + float(i);
  state.step = step;
  return state;
}

bool small_state_holds(const SmallState& state, std::int64_t step) {
  const SmallState expected = small_state_at(step);
  return state.frozen == expected.frozen && state.head == expected.head && state.adapter == expected.adapter &&
         state.step == step;
}

// "" when the crashed directory keeps the promise: every checkpoint file in
// it loads bit-exact, and a restart restores the newest whose save returned
// (or a newer one that began), skipping nothing.
std::string judge_incremental_crash(const std::string& directory, const ckpt::test::Marks& marks) {
  std::int64_t newest_done = 0, newest_begun = 0;
  for (const std::string& mark : marks) {
    const std::int64_t step = std::stoll(mark.substr(mark.find(' ') + 1));
    if (mark.rfind("done ", 0) == 0) newest_done = std::max(newest_done, step);
    if (mark.rfind("begin ", 0) == 0) newest_begun = std::max(newest_begun, step);
  }
  if (!std::filesystem::exists(directory)) return newest_done == 0 ? "" : "the run directory is gone";
  for (std::int64_t step : steps_in(directory)) {
    SmallState loaded;
    try {
      Checkpoint<SmallState>().load(checkpoint_path(directory, step), loaded);
    } catch (const Error& error) {
      return "kept step " + std::to_string(step) + " does not load: " + error.what();
    }
    if (!small_state_holds(loaded, step)) return "step " + std::to_string(step) + " loads other values";
  }
  try {
    CheckpointManager manager(directory, incremental_options(1));
    SmallState restored;
    const RestoreResult result = manager.restore_latest(restored);
    if (!result.skipped.empty()) return "restore skipped " + result.skipped[0].reason;
    const auto step = static_cast<std::int64_t>(result.checkpoint.step);
    if (step < newest_done || step > newest_begun) return "restored step " + std::to_string(step);
    if (!small_state_holds(restored, step)) return "restored other values";
  } catch (const StateError& error) {
    if (newest_done != 0) return std::string("nothing restored: ") + error.what();
  }
  return "";
}

TEST(IncrementalCrashStates, IncrementalSavesWithCollection) {
  TempDir temp;
  const std::string root = temp.file("recorded");
  std::filesystem::create_directory(root);
  ckpt::test::RecordingFileSystem recorder(root);
  {
    ScopedFileSystem scoped(recorder);
    CheckpointManager manager(root + "/run", incremental_options(1));
    for (std::int64_t step = 1; step <= 4; ++step) {
      recorder.mark("begin " + std::to_string(step));
      manager.save(std::uint64_t(step), small_state_at(step));
      recorder.mark("done " + std::to_string(step));
    }
  }
  ckpt::test::CrashStates states(recorder.log(), recorder.directory_inodes());
  const ckpt::test::CrashStateCounts counts = states.explore(
      temp.file("crashed"), ckpt::test::CrashSpace{}, [](const std::string& directory, const auto& marks) {
        return judge_incremental_crash(directory + "/run", marks);
      });
  std::cout << "[crash states] incremental manager: " << counts.crash_points << " crash points, " << counts.states
            << " states checked" << (counts.sampled ? " (sampled)" : " (exhaustive)") << ", " << counts.violations
            << " violations" << std::endl;
  for (const std::string& violation : counts.first_violations) ADD_FAILURE() << violation;
  EXPECT_EQ(counts.violations, 0u);
  EXPECT_GT(counts.states, 100u);
  // The run collected step 2 and kept step 1 for the chain.
  EXPECT_EQ(steps_in(root + "/run"), (std::vector<std::int64_t>{1, 3, 4}));
}

}  // namespace

#include <gtest/gtest.h>
#include <signal.h>

#include <fstream>
#include <mutex>

#include "ckpt/manager.hpp"
#include "step_state.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::CheckpointManager;
using ckpt::ManagerOptions;

// The same names as StepState with another dtype.
struct DoubleState {
  std::vector<double> weights = std::vector<double>(64);
  std::uint64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("weights", weights);
    ar("step", step);
  }
};

std::vector<std::uint64_t> steps_of(const std::vector<ckpt::CheckpointInfo>& checkpoints) {
  std::vector<std::uint64_t> steps;
  for (const auto& info : checkpoints) steps.push_back(info.step);
  return steps;
}

// A clock the test moves by hand.
struct FakeClock {
  double now = 1000;
  ckpt::Clock clock() {
    return [this] { return now; };
  }
};

ManagerOptions keep(std::size_t max_to_keep) {
  ManagerOptions options;
  options.retention.max_to_keep = max_to_keep;
  options.save.durable = false;  // unit tests check logic, not the disk; the crash test keeps fsync on
  return options;
}

ManagerOptions keep_all_with(FakeClock& time) {
  ManagerOptions options = keep(0);
  options.clock = time.clock();
  return options;
}

using ckpt::test::expect_error;

void flip_byte_at_end(const std::string& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(-4, std::ios::end);
  char byte = 0;
  file.read(&byte, 1);
  file.seekp(-4, std::ios::end);
  byte = static_cast<char>(byte ^ 0x40);
  file.write(&byte, 1);
}

TEST(CheckpointManager, SavesRotatesAndRestoresTheNewest) {
  ckpt::test::TempDir directory;
  CheckpointManager manager(directory.path(), keep(2));
  for (std::uint64_t step : {10, 20, 30}) manager.save(step, state_at(step));
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{20, 30}));
  EXPECT_EQ(directory.names(), (std::vector<std::string>{".ckpt-index.json", ".ckpt.lock", "ckpt-00000020.safetensors",
                                                         "ckpt-00000030.safetensors"}));
  const auto latest = manager.latest();
  ASSERT_TRUE(latest);
  EXPECT_EQ(latest->step, 30u);
  EXPECT_EQ(latest->path, directory.file("ckpt-00000030.safetensors"));
  EXPECT_GT(latest->bytes, 64u * sizeof(float));

  StepState restored(state_at(0));
  const ckpt::RestoreResult result = manager.restore_latest(restored);
  EXPECT_TRUE(result.restored);
  EXPECT_TRUE(result.skipped.empty());
  EXPECT_EQ(result.checkpoint.step, 30u);
  EXPECT_EQ(restored.weights, state_at(30).weights);
  EXPECT_EQ(restored.step, 30u);

  manager.restore(20, restored);
  EXPECT_EQ(restored.weights, state_at(20).weights);
  expect_error([&] { manager.restore(10, restored); }, ckpt::ErrorId::state_not_found, {"step 10", directory.path()});
}

TEST(CheckpointManager, MaybeSaveFollowsStepTimeAndListedRulesWithAFakeClock) {
  ckpt::test::TempDir directory;
  FakeClock time;
  ManagerOptions options = keep_all_with(time);
  options.save_policy.every_steps = 4;
  options.save_policy.every_seconds = 100;
  options.save_policy.at_steps = {3};
  std::vector<std::uint64_t> saved;
  options.on_save = [&](const ckpt::SaveEvent& event) { saved.push_back(event.step); };
  CheckpointManager manager(directory.path(), options);
  for (std::uint64_t step = 1; step <= 10; ++step) {
    time.now += step == 6 ? 100 : 1;  // a slow step: the time rule fires at step 6
    const bool due = manager.should_save(step);
    EXPECT_EQ(due, manager.should_save(step)) << "should_save must not change anything";
    EXPECT_EQ(manager.maybe_save(step, state_at(step)), due);
  }
  EXPECT_EQ(saved, (std::vector<std::uint64_t>{3, 4, 6, 8}));
  EXPECT_FALSE(manager.maybe_save(8, state_at(8))) << "a step is never saved twice";
}

TEST(CheckpointManager, AdaptiveIntervalSavesFirstThenWaitsForTheMeasuredCost) {
  ckpt::test::TempDir directory;
  FakeClock time;
  ManagerOptions options = keep_all_with(time);
  options.save_policy.max_overhead = 0.01;
  CheckpointManager manager(directory.path(), options);
  EXPECT_TRUE(manager.maybe_save(1, state_at(1)));  // nothing measured yet
  EXPECT_FALSE(manager.should_save(2));             // no fake time has passed since
  time.now += 1e6;
  EXPECT_TRUE(manager.should_save(2));
}

TEST(CheckpointManager, IgnoresAndNeverDeletesFilesOfOtherNames) {
  ckpt::test::TempDir directory;
  for (const char* name : {"notes.txt", "ckpt-5.safetensors", "other-00000005.safetensors"}) {
    std::ofstream(directory.file(name)) << "not mine";
  }
  {
    CheckpointManager manager(directory.path(), keep(1));
    for (std::uint64_t step : {1, 2, 3}) manager.save(step, state_at(step));
    EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{3}));
  }
  EXPECT_EQ(directory.names(),
            (std::vector<std::string>{".ckpt-index.json", ".ckpt.lock", "ckpt-00000003.safetensors",
                                      "ckpt-5.safetensors", "notes.txt", "other-00000005.safetensors"}));
}

TEST(CheckpointManager, ListIsRebuiltFromTheFilesWhenTheIndexIsLost) {
  ckpt::test::TempDir directory;
  FakeClock time;
  ManagerOptions options = keep_all_with(time);
  options.name_template = "e{epoch:02}-{step:06}.safetensors";
  std::vector<ckpt::CheckpointInfo> before;
  {
    CheckpointManager manager(directory.path(), options);
    for (std::uint64_t step : {5, 10}) {
      time.now += 7;
      manager.save(step, state_at(step), {step / 5, {{"loss", 1.0 / static_cast<double>(step)}}});
    }
    before = manager.list();
  }
  ASSERT_EQ(before.size(), 2u);
  std::filesystem::remove(directory.file(".ckpt-index.json"));
  ManagerOptions read_only = options;
  read_only.read_only = true;
  CheckpointManager reader(directory.path(), read_only);
  const auto after = reader.list();
  ASSERT_EQ(after.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(after[i].step, before[i].step);
    EXPECT_EQ(after[i].path, before[i].path);
    EXPECT_EQ(after[i].epoch, before[i].epoch);
    EXPECT_EQ(after[i].bytes, before[i].bytes);
    EXPECT_DOUBLE_EQ(after[i].time, before[i].time);
    EXPECT_EQ(after[i].metrics, before[i].metrics);
  }
  EXPECT_EQ(after[1].path, directory.file("e02-000010.safetensors"));
}

TEST(CheckpointManager, RestoreLatestSkipsCorruptAndTruncatedCheckpointsAndSaysWhy) {
  ckpt::test::TempDir directory;
  CheckpointManager manager(directory.path(), keep(0));
  for (std::uint64_t step : {1, 2, 3}) manager.save(step, state_at(step));
  flip_byte_at_end(directory.file("ckpt-00000003.safetensors"));
  std::filesystem::resize_file(directory.file("ckpt-00000002.safetensors"), 100);

  StepState restored(state_at(0));
  const ckpt::RestoreResult result = manager.restore_latest(restored);
  EXPECT_EQ(result.checkpoint.step, 1u);
  EXPECT_EQ(restored.weights, state_at(1).weights);
  ASSERT_EQ(result.skipped.size(), 2u);
  EXPECT_EQ(result.skipped[0].step, 3u);
  EXPECT_NE(result.skipped[0].reason.find("ckpt-00000003.safetensors"), std::string::npos) << result.skipped[0].reason;
  EXPECT_NE(result.skipped[0].reason.find("integrity_error"), std::string::npos) << result.skipped[0].reason;
  EXPECT_EQ(result.skipped[1].step, 2u);
  EXPECT_NE(result.skipped[1].reason.find("format_error"), std::string::npos) << result.skipped[1].reason;

  flip_byte_at_end(directory.file("ckpt-00000001.safetensors"));
  expect_error([&] { manager.restore_latest(restored); }, ckpt::ErrorId::state_not_found,
               {"ckpt-00000001.safetensors", "ckpt-00000002.safetensors", "ckpt-00000003.safetensors"});
  expect_error([&] { manager.restore_or_initialize(restored, [](StepState&) {}); }, ckpt::ErrorId::state_not_found,
               {"3 unusable"});
}

TEST(CheckpointManager, StepsAfterTheRestoredOneAreDueAgain) {
  ckpt::test::TempDir directory;
  ManagerOptions options = keep(0);
  options.save_policy.every_steps = 1;
  CheckpointManager manager(directory.path(), options);
  for (std::uint64_t step : {1, 2, 3}) manager.maybe_save(step, state_at(step));
  EXPECT_FALSE(manager.should_save(3));
  flip_byte_at_end(directory.file("ckpt-00000003.safetensors"));
  StepState restored(state_at(0));
  EXPECT_EQ(manager.restore_latest(restored).checkpoint.step, 2u);
  EXPECT_TRUE(manager.maybe_save(3, state_at(3))) << "the corrupt step 3 is written again";
  EXPECT_EQ(manager.restore_latest(restored).checkpoint.step, 3u);
  manager.restore(1, restored);
  EXPECT_TRUE(manager.should_save(2));
}

TEST(CheckpointManager, MismatchedStateIsThrownNotSkipped) {
  ckpt::test::TempDir directory;
  CheckpointManager manager(directory.path(), keep(0));
  manager.save(1, state_at(1));
  manager.save(2, state_at(2));
  DoubleState other;
  // The newest file is valid: the state is wrong, which no older file mends.
  expect_error<ckpt::MismatchError>([&] { manager.restore_latest(other); }, ckpt::ErrorId::mismatch_state,
                                    {"ckpt-00000002.safetensors", "weights", "F64", "F32"});
}

TEST(CheckpointManager, RestoreOrInitializeInitializesOnlyAnEmptyDirectory) {
  ckpt::test::TempDir directory;
  CheckpointManager manager(directory.path(), keep(0));
  StepState state;
  expect_error([&] { manager.restore_latest(state); }, ckpt::ErrorId::state_not_found,
               {directory.path(), "found none"});
  const auto fresh = manager.restore_or_initialize(state, [](StepState& s) { s = state_at(77); });
  EXPECT_FALSE(fresh.restored);
  EXPECT_EQ(state.step, 77u);
  manager.save(5, state_at(5));
  const auto resumed = manager.restore_or_initialize(state, [](StepState& s) { s = state_at(77); });
  EXPECT_TRUE(resumed.restored);
  EXPECT_EQ(state.step, 5u);
}

TEST(CheckpointManager, CleansItsOwnStaleTempFilesAtStartOnly) {
  ckpt::test::TempDir directory;
  const std::vector<std::string> stale{".ckpt-00000005.safetensors.tmp-123-0-1", "..ckpt-index.json.tmp-9-9-9"};
  for (const std::string& name : stale) std::ofstream(directory.file(name)) << "half written";
  std::ofstream(directory.file(".model.bin.tmp-1")) << "someone else's";
  CheckpointManager manager(directory.path(), keep(0));
  EXPECT_EQ(directory.names(), (std::vector<std::string>{".ckpt.lock", ".model.bin.tmp-1"}));
}

TEST(CheckpointManager, OneWriterPerDirectoryButReadersWorkBesideIt) {
  ckpt::test::TempDir directory;
  CheckpointManager writer(directory.path(), keep(0));
  writer.save(4, state_at(4));
  expect_error([&] { CheckpointManager second(directory.path(), keep(0)); }, ckpt::ErrorId::state_locked,
               {directory.path(), "pid " + std::to_string(::getpid())});
  ManagerOptions options = keep(0);
  options.read_only = true;
  CheckpointManager reader(directory.path(), options);
  EXPECT_EQ(steps_of(reader.list()), (std::vector<std::uint64_t>{4}));
  StepState restored(state_at(0));
  EXPECT_EQ(reader.restore_latest(restored).checkpoint.step, 4u);
  expect_error([&] { reader.save(5, state_at(5)); }, ckpt::ErrorId::state_locked, {"read-only"});
}

TEST(CheckpointManager, BestMetricAndPinsSurviveRotationAndTheHookReportsDeletions) {
  ckpt::test::TempDir directory;
  ManagerOptions options = keep(1);
  options.retention.best_metric = "loss";
  std::vector<ckpt::SaveEvent> events;
  options.on_save = [&](const ckpt::SaveEvent& event) { events.push_back(event); };
  CheckpointManager manager(directory.path(), options);
  const std::vector<double> losses{0.5, 0.1, 0.4, 0.3, 0.2};
  for (std::uint64_t step = 1; step <= 5; ++step) {
    manager.save(step, state_at(step), {std::nullopt, {{"loss", losses[step - 1]}}});
    if (step == 3) manager.pin(3);
  }
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{2, 3, 5}));
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[1].deleted, (std::vector<std::string>{directory.file("ckpt-00000001.safetensors")}));
  EXPECT_EQ(events[4].deleted, (std::vector<std::string>{directory.file("ckpt-00000004.safetensors")}));
  EXPECT_EQ(events[4].step, 5u);
  EXPECT_EQ(events[4].path, directory.file("ckpt-00000005.safetensors"));
  EXPECT_EQ(events[4].tensor_bytes, 64u * sizeof(float));
  EXPECT_EQ(events[4].file_bytes, manager.latest()->bytes);
  EXPECT_GT(events[4].compression_ratio, 0.0);
  EXPECT_FALSE(events[4].async);
  manager.unpin(3);
  manager.save(6, state_at(6), {std::nullopt, {{"loss", 0.9}}});
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{2, 6}));
  expect_error([&] { manager.pin(99); }, ckpt::ErrorId::state_not_found, {"99", directory.path()});
}

TEST(CheckpointManager, PreemptionSignalSavesAtTheNextStepBoundaryOnce) {
  ckpt::test::TempDir directory;
  ManagerOptions options = keep(0);
  options.save_policy.every_steps = 1000;
  options.save_policy.on_preemption = true;
  {
    CheckpointManager manager(directory.path(), options);
    EXPECT_FALSE(manager.should_save(17));
    EXPECT_FALSE(manager.preemption_requested());
    ASSERT_EQ(::raise(SIGTERM), 0);  // the handler only sets a flag: the process goes on
    EXPECT_TRUE(manager.preemption_requested());
    EXPECT_TRUE(manager.should_save(17));
    EXPECT_TRUE(manager.maybe_save(17, state_at(17)));
    EXPECT_FALSE(manager.should_save(18)) << "the preemption was answered by the save at 17";
    EXPECT_TRUE(manager.preemption_requested()) << "the loop still needs to know it should stop";
    EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{17}));
  }
  struct sigaction action {};
  ::sigaction(SIGTERM, nullptr, &action);
  EXPECT_EQ(action.sa_handler, SIG_DFL) << "the previous handler is restored";
}

TEST(CheckpointManager, NameTemplateWithMetricNeedsItAtEverySave) {
  ckpt::test::TempDir directory;
  ManagerOptions options = keep(0);
  options.name_template = "m-{step}-{acc:.2f}.safetensors";
  CheckpointManager manager(directory.path(), options);
  manager.save(3, state_at(3), {std::nullopt, {{"acc", 0.756}}});
  EXPECT_EQ(manager.latest()->path, directory.file("m-3-0.76.safetensors"));
  expect_error([&] { manager.save(4, state_at(4)); }, ckpt::ErrorId::argument_invalid, {"acc"});
}

// ---- asynchronous saves ----

ManagerOptions async_keep(std::size_t max_to_keep) {
  ManagerOptions options = keep(max_to_keep);
  options.async = true;
  return options;
}

TEST(CheckpointManagerAsync, TrainingMayChangeTheStateAsSoonAsSaveReturns) {
  ckpt::test::TempDir directory;
  std::vector<ckpt::SaveEvent> events;
  std::mutex events_mutex;
  ManagerOptions options = async_keep(2);
  options.on_save = [&](const ckpt::SaveEvent& event) {
    std::lock_guard<std::mutex> lock(events_mutex);
    events.push_back(event);
  };
  CheckpointManager manager(directory.path(), options);
  StepState state = state_at(1);
  for (std::uint64_t step = 1; step <= 4; ++step) {
    state = state_at(step);
    ASSERT_TRUE(manager.save(step, state));
    std::fill(state.weights.begin(), state.weights.end(), -1.0f);  // the next training step
  }
  manager.wait();
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{3, 4}));
  StepState restored(state_at(0));
  manager.restore(3, restored);
  EXPECT_EQ(restored.weights, state_at(3).weights);
  manager.restore_latest(restored);
  EXPECT_EQ(restored.weights, state_at(4).weights);
  std::lock_guard<std::mutex> lock(events_mutex);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_TRUE(events[3].async);
  EXPECT_LE(events[3].blocked_seconds, events[3].seconds);
}

TEST(CheckpointManagerAsync, DestructorFinishesThePendingSave) {
  ckpt::test::TempDir directory;
  { CheckpointManager(directory.path(), async_keep(0)).save(9, state_at(9)); }
  CheckpointManager manager(directory.path(), keep(0));
  StepState restored(state_at(0));
  EXPECT_EQ(manager.restore_latest(restored).checkpoint.step, 9u);
  EXPECT_EQ(restored.weights, state_at(9).weights);
}

using ckpt::test::FaultFileSystem;
using ckpt::test::ScopedFileSystem;

// Runs `call`, which must report the full disk a background save of `step`
// to `path` ran into: as the IoError a synchronous save throws (class and
// id kept), naming the checkpoint once and the step.
void expect_background_disk_full(const std::function<void()>& call, const std::string& path, std::uint64_t step) {
  try {
    call();
    ADD_FAILURE() << "expected the failure of the background save of step " << step;
  } catch (const ckpt::IoError& error) {
    const std::string what = error.what();
    EXPECT_EQ(error.id(), ckpt::ErrorId::io_no_space) << what;
    EXPECT_EQ(error.file(), path) << what;
    EXPECT_EQ(error.message().rfind("background save of step " + std::to_string(step) + ": the disk is full", 0), 0u)
        << what;
    EXPECT_EQ(what.find(path), what.rfind(path)) << "the file is named more than once: " << what;
    EXPECT_EQ(what.find("[ckpt."), what.rfind("[ckpt.")) << "an error is nested in another: " << what;
  }
}

TEST(CheckpointManagerAsync, BackgroundFailureIsReportedByTheNextCallThenCleared) {
  ckpt::test::TempDir directory;
  CheckpointManager manager(directory.path(), async_keep(0));
  manager.save(1, state_at(1));
  manager.wait();
  FaultFileSystem full;
  full.limit_space(0);  // every write fails with ENOSPC
  {
    ScopedFileSystem installed(full);
    ASSERT_TRUE(manager.save(2, state_at(2)));  // only stages: nothing is written on this thread
    expect_background_disk_full([&] { manager.save(3, state_at(3)); }, directory.file("ckpt-00000002.safetensors"), 2);
  }
  manager.wait();  // reported once: nothing left to throw
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{1}));
  EXPECT_EQ(directory.names(),
            (std::vector<std::string>{".ckpt-index.json", ".ckpt.lock", "ckpt-00000001.safetensors"}))
      << "the failed save left no temp file and deleted nothing";
  manager.save(4, state_at(4));
  manager.wait();
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{1, 4}));
}

TEST(CheckpointManagerAsync, WaitAndTheNextMaybeSaveReportTheFailureAsItsOwnError) {
  ckpt::test::TempDir directory;
  ManagerOptions options = async_keep(0);
  options.save_policy.every_steps = 1;
  CheckpointManager manager(directory.path(), options);
  FaultFileSystem full;
  full.limit_space(0);
  ScopedFileSystem installed(full);
  ASSERT_TRUE(manager.maybe_save(1, state_at(1)));
  expect_background_disk_full([&] { manager.wait(); }, directory.file("ckpt-00000001.safetensors"), 1);
  ASSERT_TRUE(manager.maybe_save(2, state_at(2)));
  expect_background_disk_full([&] { manager.maybe_save(3, state_at(3)); }, directory.file("ckpt-00000002.safetensors"),
                              2);
}

// What is not a ckpt error reaches the caller unchanged, as from a synchronous save.
TEST(CheckpointManagerAsync, AnExceptionOfTheHookTravelsUnchanged) {
  struct HookFailure {
    std::uint64_t step;
  };
  ckpt::test::TempDir directory;
  ManagerOptions options = async_keep(0);
  options.on_save = [](const ckpt::SaveEvent& event) { throw HookFailure{event.step}; };
  CheckpointManager manager(directory.path(), options);
  manager.save(5, state_at(5));
  try {
    manager.wait();
    ADD_FAILURE() << "the hook's exception was lost";
  } catch (const HookFailure& failure) {
    EXPECT_EQ(failure.step, 5u);
  }
}

TEST(CheckpointManagerAsync, SkipPolicyDropsADueSaveWhileOneIsInFlightButExplicitSavesWait) {
  ckpt::test::TempDir directory;
  ManagerOptions options = async_keep(0);
  options.save_policy.every_steps = 1;
  options.when_busy = ManagerOptions::WhenBusy::skip;
  CheckpointManager manager(directory.path(), options);
  FaultFileSystem gate;
  gate.hold_writes();
  {
    ScopedFileSystem installed(gate);
    EXPECT_TRUE(manager.maybe_save(1, state_at(1)));
    EXPECT_FALSE(manager.maybe_save(2, state_at(2))) << "step 1 is still being written";
    gate.release_writes();
    EXPECT_TRUE(manager.save(3, state_at(3)));  // waits for step 1
    manager.wait();
  }
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{1, 3}));
}

TEST(CheckpointManagerAsync, WaitPolicyBlocksUntilThePreviousSaveIsCommitted) {
  ckpt::test::TempDir directory;
  ManagerOptions options = async_keep(0);
  options.save_policy.every_steps = 1;
  CheckpointManager manager(directory.path(), options);
  FaultFileSystem gate;
  gate.hold_writes();
  ScopedFileSystem installed(gate);
  EXPECT_TRUE(manager.maybe_save(1, state_at(1)));
  std::thread opener([&] { gate.release_writes(); });
  EXPECT_TRUE(manager.maybe_save(2, state_at(2)));
  opener.join();
  manager.wait();
  EXPECT_EQ(steps_of(manager.list()), (std::vector<std::uint64_t>{1, 2}));
}

}  // namespace

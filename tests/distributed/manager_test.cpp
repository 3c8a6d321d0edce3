// CheckpointManager across ranks (docs/manager.md, "Across ranks"), with
// ranks on threads (thread_communicator.hpp): every save policy decided once
// for all ranks whose clocks differ, preemption reaching every rank, retention
// applied crash-safely, restores that agree on the newest valid step and
// reshard to another world size, async saves whose failure on one rank every
// rank reports, and one job per directory.

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "distributed/thread_communicator.hpp"
#include "support/expect_error.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

namespace fs = std::filesystem;

// Runs `job(communicator)` on `world` thread ranks and rethrows the lowest
// rank's failure.
template <class Job>
void on_ranks(int world, Job&& job, bool background = true) {
  const std::vector<std::exception_ptr> failures = run_ranks(world, std::forward<Job>(job), background);
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

ManagerOptions step_directories(ManagerOptions options = {}) {
  options.name_template = "step-{step:06}";
  return options;
}

// The steps at which each rank saved, by rank.
using StepsByRank = std::vector<std::vector<std::uint64_t>>;

// Trains `steps` steps on `world` ranks, each with its own fake clock that
// advances by a different amount per step (rank r: r + 1 seconds), and
// returns each rank's saved steps.
StepsByRank saved_steps(const std::string& directory, int world, std::uint64_t steps, ManagerOptions options) {
  StepsByRank saved(static_cast<std::size_t>(world));
  on_ranks(world, [&](Communicator& communicator) {
    const int rank = communicator.rank();
    double now = 1000.0 * rank;  // the ranks' clocks disagree from the start
    ManagerOptions mine = options;
    mine.clock = [&now] { return now; };
    DistributedCheckpointManager manager(communicator, directory, mine);
    for (std::uint64_t step = 1; step <= steps; ++step) {
      now += rank + 1;
      SampleState state = sample_for_saving(rank, communicator.size(), step);
      if (manager.maybe_save(step, state)) saved[static_cast<std::size_t>(rank)].push_back(step);
    }
    manager.wait();
  });
  return saved;
}

void expect_all_ranks_agree(const StepsByRank& saved) {
  for (std::size_t rank = 1; rank < saved.size(); ++rank) {
    EXPECT_EQ(saved[rank], saved[0]) << "rank " << rank << " saved at other steps than rank 0";
  }
}

std::vector<CheckpointInfo> listed_checkpoints(const std::string& directory) {
  ManagerOptions options = step_directories();
  options.read_only = true;
  SingleProcessCommunicator one;
  return DistributedCheckpointManager(one, directory, options).list();
}

std::vector<std::uint64_t> listed_steps(const std::string& directory) {
  std::vector<std::uint64_t> steps;
  for (const CheckpointInfo& info : listed_checkpoints(directory)) steps.push_back(info.step);
  return steps;
}

std::vector<std::string> dotted_entries(const std::string& directory) {
  std::vector<std::string> found;
  for (const auto& entry : fs::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (name[0] == '.' && name != ".ckpt.lock" && name != ".ckpt-index.json") found.push_back(name);
  }
  return found;
}

TEST(DistributedManager, EveryStepsPolicyIsTheSameOnEveryRank) {
  for (int world = 2; world <= 4; ++world) {
    TempDir temp;
    ManagerOptions options = step_directories();
    options.save_policy.every_steps = 3;
    options.retention.max_to_keep = 0;
    const StepsByRank saved = saved_steps(temp.path(), world, 10, options);
    expect_all_ranks_agree(saved);
    EXPECT_EQ(saved[0], (std::vector<std::uint64_t>{3, 6, 9}));
    EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{3, 6, 9}));
  }
}

// Rank 0's clock decides: it advances 1 s a step, so every 3 s is every 3
// steps, though rank 3's clock advances 4 s a step.
TEST(DistributedManager, EverySecondsPolicyFollowsRankZerosClockOnEveryRank) {
  for (int world = 2; world <= 4; ++world) {
    TempDir temp;
    ManagerOptions options = step_directories();
    options.save_policy.every_seconds = 3;
    options.retention.max_to_keep = 0;
    const StepsByRank saved = saved_steps(temp.path(), world, 10, options);
    expect_all_ranks_agree(saved);
    EXPECT_EQ(saved[0], (std::vector<std::uint64_t>{3, 6, 9}));
  }
}

TEST(DistributedManager, CheckFreqIntervalAndFixedStepsAgreeAcrossRanks) {
  for (int world = 2; world <= 4; ++world) {
    TempDir temp;
    ManagerOptions options = step_directories();
    options.save_policy.max_overhead = 0.5;
    options.save_policy.at_steps = {7};
    options.retention.max_to_keep = 0;
    const StepsByRank saved = saved_steps(temp.path(), world, 12, options);
    expect_all_ranks_agree(saved);
    ASSERT_FALSE(saved[0].empty());
    EXPECT_EQ(saved[0].front(), 1u) << "the first opportunity is taken, to measure a save";
    EXPECT_NE(std::find(saved[0].begin(), saved[0].end(), 7u), saved[0].end());
  }
}

// A SIGUSR1 raised by one rank's thread in the middle of training: every rank
// saves at one same step and stops after it.
TEST(DistributedManager, PreemptionSignalOnOneRankSavesOnEveryRankAtTheSameStep) {
  TempDir temp;
  constexpr int world = 3;
  StepsByRank saved(world);
  std::vector<std::uint64_t> stopped_after(world, 0);
  on_ranks(world, [&](Communicator& communicator) {
    const int rank = communicator.rank();
    ManagerOptions options = step_directories();
    options.save_policy.on_preemption = true;
    options.save_policy.preemption_signals = {SIGUSR1};
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    std::uint64_t step = 0;
    while (step < 50 && !manager.preemption_requested()) {
      ++step;
      if (rank == 1 && step == 5) ::raise(SIGUSR1);
      SampleState state = sample_for_saving(rank, world, step);
      if (manager.maybe_save(step, state)) saved[static_cast<std::size_t>(rank)].push_back(step);
    }
    stopped_after[static_cast<std::size_t>(rank)] = step;
  });
  expect_all_ranks_agree(saved);
  ASSERT_EQ(saved[0].size(), 1u);
  EXPECT_GE(saved[0][0], 5u);
  EXPECT_EQ(stopped_after, std::vector<std::uint64_t>(world, saved[0][0]));
  EXPECT_EQ(listed_steps(temp.path()), saved[0]);
}

// A rank's communicator that tells the test when the first exchange after
// arm() has completed: in maybe_save, the moment the ranks have decided and
// the save decided has not begun.
class WatchedCommunicator final : public Communicator {
 public:
  explicit WatchedCommunicator(Communicator& inner) : inner_(inner) {}

  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::vector<std::string> all_gather(std::string_view bytes) override {
    std::vector<std::string> all = inner_.all_gather(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    if (armed_) {
      armed_ = false;
      exchanged_ = true;
      changed_.notify_all();
    }
    return all;
  }
  std::vector<std::string> gather(std::string_view bytes, int root) override { return inner_.gather(bytes, root); }
  std::string broadcast(std::string_view bytes, int root) override { return inner_.broadcast(bytes, root); }
  bool allows_background_collectives() const override { return inner_.allows_background_collectives(); }
  std::unique_ptr<Communicator> duplicate() override { return inner_.duplicate(); }

  void arm() {
    std::lock_guard<std::mutex> lock(mutex_);
    armed_ = true;
  }
  void wait_for_exchange() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return exchanged_; });
  }

 private:
  Communicator& inner_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool armed_ = false;
  bool exchanged_ = false;
};

// The race of a signal that arrives while a policy save is pending: rank 1's
// background save of step 2 raises SIGUSR1 from its on_save, after the ranks
// decided to save step 3 (busy: they wait for that background save) and
// before step 3's save begins. Step 3's decision did not see the signal, so
// its save must not count as answering it: every rank saves step 4 for it
// and stops there.
TEST(DistributedManager, SignalDuringAPendingPolicySaveStopsEveryRankAtTheNextStep) {
  TempDir temp;
  constexpr int world = 3;
  constexpr std::uint64_t step_limit = 8;
  StepsByRank saved(world);
  std::vector<std::uint64_t> stopped_after(world, 0);
  on_ranks(world, [&](Communicator& communicator) {
    const int rank = communicator.rank();
    WatchedCommunicator watched(communicator);
    ManagerOptions options = step_directories();
    options.async = true;
    options.when_busy = ManagerOptions::WhenBusy::wait;
    options.save_policy.every_steps = 1;
    options.save_policy.on_preemption = true;
    options.save_policy.preemption_signals = {SIGUSR1};
    options.retention.max_to_keep = 0;
    options.on_save = [&watched, rank](const SaveEvent& event) {
      if (rank != 1 || event.step != 2) return;
      watched.wait_for_exchange();
      ::raise(SIGUSR1);
    };
    DistributedCheckpointManager manager(watched, temp.path(), options);
    std::uint64_t step = 0;
    while (step < step_limit && !manager.preemption_requested()) {
      ++step;
      if (rank == 1 && step == 3) watched.arm();
      if (manager.maybe_save(step, sample_for_saving(rank, world, step))) {
        saved[static_cast<std::size_t>(rank)].push_back(step);
      }
    }
    manager.wait();
    stopped_after[static_cast<std::size_t>(rank)] = step;
  });
  EXPECT_EQ(stopped_after, std::vector<std::uint64_t>(world, 4)) << "each rank's last step";
  expect_all_ranks_agree(saved);
  EXPECT_EQ(saved[0], (std::vector<std::uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{1, 2, 3, 4}));
}

TEST(DistributedManager, RetentionKeepsNewestMilestonesAndPinsAndDeletesTheRest) {
  TempDir temp;
  ManagerOptions options = step_directories();
  options.save_policy.every_steps = 1;
  options.retention.max_to_keep = 2;
  options.retention.keep_every_steps = 4;
  options.retention.pinned_steps = {1};
  saved_steps(temp.path(), 3, 9, options);
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{1, 4, 8, 9}));
  EXPECT_EQ(dotted_entries(temp.path()), std::vector<std::string>());
  for (const char* gone : {"step-000002", "step-000003", "step-000005", "step-000006", "step-000007"}) {
    EXPECT_FALSE(fs::exists(temp.file(gone))) << gone;
  }
}

TEST(DistributedManager, BestKAndByteBudgetAreAppliedByRankZero) {
  TempDir temp;
  constexpr int world = 2;
  on_ranks(world, [&](Communicator& communicator) {
    ManagerOptions options = step_directories();
    options.retention.max_to_keep = 1;
    options.retention.best_metric = "loss";
    options.retention.keep_best = 1;
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    const double losses[] = {0.5, 0.1, 0.3, 0.4};
    for (std::uint64_t step = 1; step <= 4; ++step) {
      // Only rank 0's metrics count: the other ranks' differ.
      const double loss = communicator.rank() == 0 ? losses[step - 1] : 1.0 / static_cast<double>(step);
      manager.save(step, sample_for_saving(communicator.rank(), world, step), StepInfo{std::nullopt, {{"loss", loss}}});
    }
  });
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{2, 4}));

  TempDir budget;
  ManagerOptions options = step_directories();
  options.save_policy.every_steps = 1;
  options.retention.max_to_keep = 0;
  saved_steps(temp.file("measure"), world, 1, options);
  const std::uint64_t one = listed_checkpoints(temp.file("measure")).at(0).bytes;
  options.retention.max_total_bytes = 3 * one + one / 2;
  saved_steps(budget.path(), world, 6, options);
  EXPECT_EQ(listed_steps(budget.path()), (std::vector<std::uint64_t>{4, 5, 6}));
}

// Deletion renames first: with the removal of the renamed directory's files
// failing, the step is already out of the listing, the failure reaches every
// rank, and the next job removes the leftover.
class FailingRemovals : public detail::FileSystem {
 public:
  int unlink(const char* path) override {
    if (std::string(path).find(".removing/") != std::string::npos) {
      errno = EIO;
      return -1;
    }
    return detail::FileSystem::unlink(path);
  }
};

TEST(DistributedManager, InterruptedDeletionLeavesNoHalfCheckpointAndIsCleanedByTheNextJob) {
  TempDir temp;
  constexpr int world = 3;
  ManagerOptions options = step_directories();
  options.retention.max_to_keep = 1;
  {
    FailingRemovals failing;
    detail::set_file_system(&failing);
    on_ranks(world, [&](Communicator& communicator) {
      DistributedCheckpointManager manager(communicator, temp.path(), options);
      manager.save(1, sample_for_saving(communicator.rank(), world, 1));
      expect_error<IoError>([&] { manager.save(2, sample_for_saving(communicator.rank(), world, 2)); },
                            ErrorId::io_remove,
                            {"rank 0 of 3", ".step-000001.removing/model.safetensors.index.json", "unlink failed"});
    });
    detail::set_file_system(nullptr);
  }
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{2}));
  EXPECT_EQ(dotted_entries(temp.path()), (std::vector<std::string>{".step-000001.removing"}));
  // A save killed before its commit leaves a directory without an index.
  fs::create_directories(temp.file("step-000003"));
  std::ofstream(temp.file("step-000003/model-00001-of-00002.safetensors")) << "partial";
  on_ranks(
      2, [&](Communicator& communicator) { DistributedCheckpointManager manager(communicator, temp.path(), options); });
  EXPECT_EQ(dotted_entries(temp.path()), std::vector<std::string>());
  EXPECT_FALSE(fs::exists(temp.file("step-000003")));
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{2}));
}

// Saved by 3 ranks, restored by 1 to 4 ranks under another split, bit for bit.
TEST(DistributedManager, RestoreLatestReshardsToAnyNumberOfRanks) {
  TempDir temp;
  ManagerOptions options = step_directories();
  options.save_policy.every_steps = 2;
  saved_steps(temp.path(), 3, 7, options);
  for (int world = 1; world <= 4; ++world) {
    SCOPED_TRACE(std::to_string(world) + " ranks");
    std::mutex mutex;
    std::vector<std::string> problems;
    on_ranks(world, [&](Communicator& communicator) {
      DistributedCheckpointManager manager(communicator, temp.path(), options);
      SampleState state = sample_for_loading(communicator.rank(), world);
      const RestoreResult result = manager.restore_or_initialize(state, [](SampleState&) { FAIL(); });
      std::lock_guard<std::mutex> lock(mutex);
      EXPECT_TRUE(result.restored);
      EXPECT_EQ(result.checkpoint.step, 6u);
      EXPECT_EQ(state.step, 6u);
      EXPECT_TRUE(result.skipped.empty());
      for (const std::string& problem : sample_differences(state)) problems.push_back(problem);
    });
    EXPECT_EQ(problems, std::vector<std::string>());
  }
}

void flip_byte_at_end(const std::string& path) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(-3, std::ios::end);
  const char byte = static_cast<char>(file.get());
  file.seekp(-3, std::ios::end);
  file.put(static_cast<char>(byte ^ 0x5A));
}

// Saves steps 1 to `steps` with 3 ranks, keeping them all; returns the
// options used.
ManagerOptions every_step_saved_by_three_ranks(const std::string& directory, std::uint64_t steps) {
  ManagerOptions options = step_directories();
  options.save_policy.every_steps = 1;
  options.retention.max_to_keep = 0;
  saved_steps(directory, 3, steps, options);
  return options;
}

// The newest step has a corrupt file (which only one rank verifies) and the
// one before lost a file: every rank skips both, reports both, and restores
// the step before them.
TEST(DistributedManager, RestoreFallsBackTogetherPastCorruptAndIncompleteSteps) {
  TempDir temp;
  const ManagerOptions options = every_step_saved_by_three_ranks(temp.path(), 3);
  flip_byte_at_end(temp.file("step-000003/model-00003-of-00003.safetensors"));
  fs::remove(temp.file("step-000002/model-00002-of-00003.safetensors"));
  std::mutex mutex;
  std::vector<std::vector<std::string>> reasons;
  on_ranks(2, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sample_for_loading(communicator.rank(), 2);
    const RestoreResult result = manager.restore_latest(state);
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(result.checkpoint.step, 1u);
    EXPECT_EQ(sample_differences(state), std::vector<std::string>());
    std::vector<std::string> mine;
    for (const SkippedCheckpoint& skipped : result.skipped) mine.push_back(skipped.path + ": " + skipped.reason);
    reasons.push_back(mine);
  });
  ASSERT_EQ(reasons.size(), 2u);
  EXPECT_EQ(reasons[0], reasons[1]);
  ASSERT_EQ(reasons[0].size(), 2u);
  EXPECT_NE(reasons[0][0].find("step-000003/model-00003-of-00003.safetensors"), std::string::npos) << reasons[0][0];
  EXPECT_NE(reasons[0][1].find("step-000002/model-00002-of-00003.safetensors"), std::string::npos) << reasons[0][1];
}

// A state for rank `rank` of `world` loading ranks whose every byte is a
// sentinel, to see whether a failed restore wrote into it.
SampleState sentinel_state(int rank, int world) {
  SampleState state = sample_for_loading(rank, world);
  for (const SampleTensor& tensor : sample_tensors()) {
    Tensor local = Tensor::allocate(tensor.dtype, state.piece(tensor).stored_shape(tensor.shape));
    std::fill(local.mutable_data(), local.mutable_data() + local.nbytes(), std::byte{0xEE});
    state.locals[tensor.name] = std::move(local);
  }
  state.step = 77;
  state.note = "before the restore";
  return state;
}

// What differs from sentinel_state(), one line per tensor or field.
std::vector<std::string> sentinel_changes(const SampleState& state) {
  const SampleState sentinel = sentinel_state(state.rank, state.world);
  std::vector<std::string> changes;
  for (const auto& [name, expected] : sentinel.locals) {
    const auto found = state.locals.find(name);
    const bool same = found != state.locals.end() && found->second.shape() == expected.shape() &&
                      std::equal(expected.data(), expected.data() + expected.nbytes(), found->second.data());
    if (!same) changes.push_back(name);
  }
  if (state.locals.size() != sentinel.locals.size()) changes.push_back("the set of tensors");
  if (state.step != sentinel.step) changes.push_back("step " + std::to_string(state.step));
  if (state.note != sentinel.note) changes.push_back("note '" + state.note + "'");
  return changes;
}

// Step 2 has a corrupt file that only rank 1 of 2 verifies: restore(2)
// throws that file's error on every rank before a byte is loaded, so every
// rank's state is as it was; the manager then restores step 1.
TEST(DistributedManager, RestoreOfACorruptStepThrowsOnEveryRankWithTheStateUntouched) {
  TempDir temp;
  const ManagerOptions options = every_step_saved_by_three_ranks(temp.path(), 2);
  const std::string corrupt = temp.file("step-000002/model-00002-of-00003.safetensors");
  flip_byte_at_end(corrupt);
  constexpr int world = 2;
  std::mutex mutex;
  std::vector<std::string> changes;
  on_ranks(world, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sentinel_state(communicator.rank(), world);
    expect_error<IntegrityError>([&] { manager.restore(2, state); }, ErrorId::integrity_tensor_checksum,
                                 {corrupt, "rank 1 of 2", "expected", "found"});
    std::vector<std::string> mine = sentinel_changes(state);
    const RestoreResult result = manager.restore(1, state);
    std::lock_guard<std::mutex> lock(mutex);
    for (const std::string& change : mine) changes.push_back("rank " + std::to_string(state.rank) + ": " + change);
    EXPECT_EQ(result.checkpoint.step, 1u);
    EXPECT_EQ(state.step, 1u);
    EXPECT_EQ(sample_differences(state), std::vector<std::string>());
  });
  EXPECT_EQ(changes, std::vector<std::string>());
}

TEST(DistributedManager, NoValidStepIsAnErrorOnEveryRankNotAFreshStart) {
  TempDir temp;
  ManagerOptions options = step_directories();
  options.save_policy.every_steps = 1;
  saved_steps(temp.path(), 2, 1, options);
  fs::remove(temp.file("step-000001/model-00001-of-00002.safetensors"));
  on_ranks(2, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sample_for_loading(communicator.rank(), 2);
    expect_error<StateError>([&] { manager.restore_or_initialize(state, [](SampleState&) { FAIL(); }); },
                             ErrorId::state_not_found,
                             {temp.path(), "expected a valid checkpoint directory named like 'step-{step:06}'",
                              "found 1 unusable", "model-00001-of-00002.safetensors"});
  });
}

TEST(DistributedManager, SecondJobOnTheDirectoryGetsStateErrorOnEveryRank) {
  TempDir temp;
  on_ranks(2, [&](Communicator& first) {
    DistributedCheckpointManager manager(first, temp.path(), step_directories());
    if (first.rank() != 0) return;
    on_ranks(3, [&](Communicator& second) {
      expect_error<StateError>([&] { DistributedCheckpointManager(second, temp.path(), step_directories()); },
                               ErrorId::state_locked,
                               {"rank 0 of 3", "directory '" + temp.path() + "' is already used by another"});
    });
  });
}

// The disk is full for the rank that writes the second file: its write
// fails in the background while every rank's loop carries on, and the next
// manager call every rank makes throws that failure, with its kind and id.
class FullDiskForOneFile : public detail::FileSystem {
 public:
  int open(const char* path, int flags, unsigned mode) override {
    const int fd = detail::FileSystem::open(path, flags, mode);
    if (fd >= 0 && std::string(path).find("model-00002-of-00003") != std::string::npos) {
      std::lock_guard<std::mutex> lock(mutex_);
      full_.push_back(fd);
    }
    return fd;
  }
  int close(int fd) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      full_.erase(std::remove(full_.begin(), full_.end(), fd), full_.end());
    }
    return detail::FileSystem::close(fd);
  }
  long pwrite(int fd, const void* data, std::size_t size, std::uint64_t offset) override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (std::find(full_.begin(), full_.end(), fd) != full_.end()) {
        errno = ENOSPC;
        return -1;
      }
    }
    return detail::FileSystem::pwrite(fd, data, size, offset);
  }

 private:
  std::mutex mutex_;
  std::vector<int> full_;
};

TEST(DistributedManager, AsyncFailureOnOneRankIsReportedByTheNextCallOnEveryRank) {
  TempDir temp;
  constexpr int world = 3;
  ManagerOptions options = step_directories();
  options.async = true;
  options.save_policy.every_steps = 2;
  std::atomic<int> reported{0};
  FullDiskForOneFile full;
  on_ranks(world, [&](Communicator& communicator) {
    const int rank = communicator.rank();
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sample_for_saving(rank, world, 2);
    EXPECT_TRUE(manager.maybe_save(2, state));
    state.locals.clear();  // the loop changes its state at once: the save has its copy
    manager.wait();
    if (rank == 0) detail::set_file_system(&full);
    communicator.all_gather("");  // every rank saves step 4 on the full disk
    EXPECT_TRUE(manager.maybe_save(4, sample_for_saving(rank, world, 4)));
    expect_error<IoError>([&] { manager.wait(); }, ErrorId::io_no_space,
                          {"background save of step 4: ", "rank 1 of 3", "model-00002-of-00003", "the disk is full"});
    communicator.all_gather("");
    if (rank == 0) detail::set_file_system(nullptr);
    reported.fetch_add(1);
    manager.wait();  // reported once
  });
  EXPECT_EQ(reported.load(), world);
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{2}));
  std::mutex mutex;
  on_ranks(2, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sample_for_loading(communicator.rank(), 2);
    manager.restore_latest(state);
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(state.step, 2u);
    EXPECT_EQ(sample_differences(state), std::vector<std::string>());
  });
}

// Without waiting: the failure is reported by the first maybe_save at which
// no rank is still busy, the same call on every rank.
TEST(DistributedManager, AsyncFailureIsReportedAtTheSameStepOnEveryRank) {
  TempDir temp;
  constexpr int world = 3;
  ManagerOptions options = step_directories();
  options.async = true;
  options.save_policy.every_steps = 2;
  std::vector<std::uint64_t> reported_at(world, 0);
  on_ranks(world, [&](Communicator& communicator) {
    const int rank = communicator.rank();
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    for (std::uint64_t step = 1; step <= 20; ++step) {
      SampleState state = sample_for_saving(rank, world, step);
      if (rank == 2 && step == 2) state.on_describe = [] { throw std::runtime_error("describe failed"); };
      try {
        manager.maybe_save(step, state);
      } catch (const StateError& error) {
        EXPECT_EQ(error.id(), ErrorId::state_rank_failed);
        EXPECT_NE(std::string(error.what()).find("rank 2 of 3 failed: describe failed"), std::string::npos)
            << error.what();
        reported_at[static_cast<std::size_t>(rank)] = step;
        break;
      }
    }
  });
  EXPECT_GT(reported_at[0], 2u);
  EXPECT_EQ(reported_at, std::vector<std::uint64_t>(world, reported_at[0]));
}

TEST(DistributedManager, AsyncSavesRotateAndRestoreBitExactUnderAnotherWorldSize) {
  TempDir temp;
  constexpr int world = 2;
  ManagerOptions options = step_directories();
  options.async = true;
  options.save_policy.every_steps = 1;
  options.retention.max_to_keep = 2;
  saved_steps(temp.path(), world, 5, options);
  EXPECT_EQ(listed_steps(temp.path()), (std::vector<std::uint64_t>{4, 5}));
  std::mutex mutex;
  on_ranks(3, [&](Communicator& communicator) {
    DistributedCheckpointManager manager(communicator, temp.path(), options);
    SampleState state = sample_for_loading(communicator.rank(), 3);
    manager.restore(4, state);
    std::lock_guard<std::mutex> lock(mutex);
    EXPECT_EQ(state.step, 4u);
    EXPECT_EQ(sample_differences(state), std::vector<std::string>());
  });
}

}  // namespace
}  // namespace ckpt::test

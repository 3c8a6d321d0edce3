// Fault injection at every file-system call of a manager's save with
// rotation: opening the manager (lock, temp-file cleanup), writing the new
// checkpoint, updating the index and deleting the checkpoint that falls out
// of max_to_keep. After each failure or crash, every previously committed
// checkpoint is intact (the old one may be gone only once the new one is
// committed), and a new manager cleans up and restores the newest one.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/manager.hpp"
#include "report.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

struct TrainState {
  std::vector<float> weights = std::vector<float>(48);
  std::vector<double> moments = std::vector<double>(20);
  std::int64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model/weights", weights);
    ar("optimizer/moments", moments);
    ar("step", step);
  }
  bool operator==(const TrainState& other) const {
    return weights == other.weights && moments == other.moments && step == other.step;
  }
};

TrainState state_at(std::int64_t step) {
  TrainState state;
  for (std::size_t i = 0; i < state.weights.size(); ++i) state.weights[i] = static_cast<float>(step) * 0.5f + i;
  for (std::size_t i = 0; i < state.moments.size(); ++i) state.moments[i] = static_cast<double>(step) / (i + 1);
  state.step = step;
  return state;
}

ManagerOptions options_for(bool async) {
  ManagerOptions options;
  options.retention.max_to_keep = 2;
  options.save.threads = 1;
  options.async = async;
  return options;
}

std::string checkpoint_path(const std::string& directory, std::int64_t step) {
  char name[64];
  std::snprintf(name, sizeof name, "/ckpt-%08lld.safetensors", static_cast<long long>(step));
  return directory + name;
}

// The work under test: a training program (re)starting and saving step 3,
// which pushes step 1 out of max_to_keep = 2.
void save_step_3(const std::string& directory, bool async) {
  CheckpointManager manager(directory, options_for(async));
  manager.save(3, state_at(3));
  manager.wait();
}

class ManagerFaults : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    CheckpointManager manager(committed_.path(), options_for(false));
    manager.save(1, state_at(1));
    manager.save(2, state_at(2));
  }

  // A copy of the directory holding steps 1 and 2, committed.
  std::string fresh_directory() {
    const std::string directory = work_.file("run" + std::to_string(++runs_));
    std::filesystem::copy(committed_.path(), directory, std::filesystem::copy_options::recursive);
    return directory;
  }

  // What a user relies on after any failure or crash of save_step_3.
  void expect_committed_work_intact(const std::string& directory, const std::string& context) {
    const auto holds = [&](std::int64_t step) {
      TrainState loaded;
      Checkpoint<TrainState>().load(checkpoint_path(directory, step), loaded);
      return loaded == state_at(step);
    };
    const bool has_step_1 = std::filesystem::exists(checkpoint_path(directory, 1));
    const bool has_step_3 = std::filesystem::exists(checkpoint_path(directory, 3));
    ASSERT_TRUE(std::filesystem::exists(checkpoint_path(directory, 2))) << context << ": step 2 was lost";
    EXPECT_TRUE(holds(2)) << context;
    EXPECT_TRUE(!has_step_1 || holds(1)) << context;
    EXPECT_TRUE(!has_step_3 || holds(3)) << context;
    EXPECT_TRUE(has_step_1 || has_step_3) << context << ": step 1 was deleted before step 3 was committed";

    // A restarted program: cleans up what the failure left, resumes from the newest, saves on.
    CheckpointManager manager(directory, options_for(false));
    TrainState restored;
    const RestoreResult result = manager.restore_latest(restored);
    EXPECT_TRUE(result.restored) << context;
    EXPECT_TRUE(result.skipped.empty()) << context << ": skipped " << result.skipped.front().reason;
    EXPECT_EQ(result.checkpoint.step, has_step_3 ? 3u : 2u) << context;
    EXPECT_TRUE(restored == state_at(has_step_3 ? 3 : 2)) << context;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) {
      const std::string name = entry.path().filename();
      EXPECT_FALSE(detail::is_temp_file_name(name)) << context << ": a restart left the temp file " << name;
    }
    manager.save(4, state_at(4));
    EXPECT_EQ(manager.latest()->step, 4u) << context;
  }

  TempDir committed_;
  TempDir work_;
  int runs_ = 0;
};

// The id a failed call that changes the directory must be reported with:
// a save that returns normally after one of these failed lost something
// silently. Reads, stats, listings and closes of what was only read may fail
// without the save failing (the index is a cache; a file whose header cannot
// be read is listed by name and skipped on restore), but if they make the
// save fail, it is with an IoError.
std::optional<ErrorId> id_reported_for(FsOp op, int error) {
  std::optional<ErrorId> id;
  switch (op) {
    case FsOp::pwrite: id = ErrorId::io_write; break;
    case FsOp::fsync: id = ErrorId::io_sync; break;
    case FsOp::rename: id = ErrorId::io_rename; break;
    case FsOp::unlink: id = ErrorId::io_remove; break;
    case FsOp::mkdir:
    case FsOp::flock: id = ErrorId::io_open; break;
    case FsOp::ftruncate: id = ErrorId::io_write; break;
    default: return std::nullopt;
  }
  return error == ENOSPC ? ErrorId::io_no_space : *id;
}

// The path of the `nth` call of `op` in `trace`.
std::string path_of_call(const std::vector<FsCall>& trace, FsOp op, std::uint64_t nth) {
  for (const FsCall& call : trace) {
    if (call.op == op && --nth == 0) return call.path;
  }
  return "";
}

// A background save's failure keeps its class and id, as a synchronous one's does.
// The one change allowed to fail unreported is the lock file's pid, a hint
// for the "already used" message (detail/os/directory_lock.hpp).
void expect_failure_reported(FsOp op, int error, const std::string& path, const std::optional<IoError>& thrown,
                             const std::string& context) {
  const std::optional<ErrorId> expected = id_reported_for(op, error);
  if (!expected || detail::file_name_of(path) == ".ckpt.lock") return;
  ASSERT_TRUE(thrown.has_value()) << context << ": the save returned as if nothing had failed";
  EXPECT_EQ(thrown->id(), *expected) << context << ": " << thrown->what();
  const std::string says = error == ENOSPC ? "the disk is full" : std::strerror(error);
  EXPECT_NE(std::string(thrown->what()).find(says), std::string::npos) << context << ": " << thrown->what();
}

TEST_P(ManagerFaults, EveryFailingCallKeepsCommittedCheckpoints) {
  const bool async = GetParam();
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    save_step_3(fresh_directory(), async);
  }
  ASSERT_GT(counting.count(FsOp::unlink), 0u) << "the save must rotate step 1 out";
  std::uint64_t cases = 0;
  for (FsOp op : all_fs_ops) {
    for (std::uint64_t nth = 1; nth <= counting.count(op); ++nth) {
      for (int error : {EIO, ENOSPC}) {
        const std::string context =
            std::string("failing ") + fs_op_name(op) + " #" + std::to_string(nth) + " with " + std::strerror(error);
        const std::string directory = fresh_directory();
        std::optional<IoError> thrown;
        {
          FaultFileSystem fs;
          fs.fail_at(op, nth, error);
          ScopedFileSystem scoped(fs);
          try {
            save_step_3(directory, async);
          } catch (const IoError& e) {
            thrown = e;
          }
        }
        expect_failure_reported(op, error, path_of_call(counting.trace(), op, nth), thrown, context);
        expect_committed_work_intact(directory, context);
        ++cases;
      }
    }
  }
  report_count(std::string("manager faults (") + (async ? "async" : "sync") + ", failing calls)", cases);
  // The README's Reliability section counts 300 fault cases for a manager:
  // 100 failing calls and 50 crashes, sync and async alike (each rotation
  // reads the kept checkpoints' headers for the chains they need).
  EXPECT_EQ(cases, 100u);
}

TEST_P(ManagerFaults, CrashBeforeAnyCallKeepsCommittedCheckpoints) {
  const bool async = GetParam();
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    save_step_3(fresh_directory(), async);
  }
  const std::uint64_t calls = counting.total_calls();
  std::uint64_t crashes = 0;
  for (std::uint64_t nth = 1; nth <= calls + 1; ++nth) {
    const std::string context = "crash before call #" + std::to_string(nth) + " of " + std::to_string(calls);
    const std::string directory = fresh_directory();
    const ChildOutcome outcome = run_crashing_at(nth, [&] { save_step_3(directory, async); });
    ASSERT_EQ(outcome, nth <= calls ? ChildOutcome::crashed : ChildOutcome::completed) << context;
    expect_committed_work_intact(directory, context);
    crashes += outcome == ChildOutcome::crashed;
  }
  report_count(std::string("manager faults (") + (async ? "async" : "sync") + ", crashes)", crashes);
  EXPECT_EQ(crashes, 50u) << "the README's Reliability section counts 300 fault cases for a manager";
}

// Against a power cut: step 1 is unlinked only after step 3's data and its
// rename are synced, so no order of lost writes can leave neither.
TEST_P(ManagerFaults, RotationDeletesOnlyAfterTheNewCheckpointIsDurable) {
  const std::string directory = fresh_directory();
  FaultFileSystem fs;
  {
    ScopedFileSystem scoped(fs);
    save_step_3(directory, GetParam());
  }
  const std::vector<FsCall> trace = fs.trace();
  const std::string step_3 = checkpoint_path(directory, 3);
  std::size_t renamed = trace.size(), directory_synced = trace.size(), unlinked = trace.size();
  for (std::size_t i = 0; i < trace.size(); ++i) {
    if (trace[i].op == FsOp::rename && trace[i].target == step_3) renamed = i;
    if (trace[i].op == FsOp::fsync && trace[i].path == directory && i > renamed && directory_synced == trace.size()) {
      directory_synced = i;
    }
    if (trace[i].op == FsOp::unlink && trace[i].path == checkpoint_path(directory, 1)) unlinked = i;
  }
  ASSERT_LT(unlinked, trace.size()) << "step 1 was not rotated out";
  EXPECT_LT(renamed, directory_synced);
  EXPECT_LT(directory_synced, unlinked);
}

// The cleanup after a failed save can fail too: the save's own error is the
// one reported, the temp file it could not remove is left, and the next
// manager on the directory removes it.
TEST_P(ManagerFaults, AFailedCleanupAfterAFailedSaveHidesNothing) {
  const std::string directory = fresh_directory();
  {
    FaultFileSystem fs;
    fs.fail_at(FsOp::fsync, 1, EIO);   // the new checkpoint's data
    fs.fail_at(FsOp::unlink, 1, EIO);  // removing its temp file
    ScopedFileSystem scoped(fs);
    expect_error<IoError>([&] { save_step_3(directory, GetParam()); }, ErrorId::io_sync,
                          {"ckpt-00000003.safetensors", "fsync", std::strerror(EIO)});
    EXPECT_EQ(fs.count(FsOp::unlink), 1u) << "the cleanup was attempted once";
  }
  bool temp_left = false;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    temp_left = temp_left || detail::is_temp_file_name(entry.path().filename().string());
  }
  EXPECT_TRUE(temp_left) << "the failed unlink removed the temp file all the same";
  expect_committed_work_intact(directory, "fsync and its cleanup failing");
}

// restore_latest verifies a checkpoint before it touches the state: with
// every checkpoint damaged in its tensor bytes, it throws and the state is
// exactly what the caller had.
TEST(ManagerRestore, EveryCheckpointCorruptLeavesTheStateUnchanged) {
  TempDir dir;
  {
    CheckpointManager manager(dir.path(), options_for(false));
    manager.save(1, state_at(1));
    manager.save(2, state_at(2));
  }
  for (std::int64_t step : {1, 2}) {
    const std::string path = checkpoint_path(dir.path(), step);
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
    // The last bytes of the file are tensor data (the header comes first).
    file.seekg(-3, std::ios::end);
    const char byte = static_cast<char>(file.get() ^ 0x10);
    file.seekp(-3, std::ios::end);
    file.put(byte);
    ASSERT_TRUE(file.good()) << path;
  }
  const TrainState sentinel = state_at(777);
  TrainState state = sentinel;
  CheckpointManager manager(dir.path(), options_for(false));
  try {
    manager.restore_latest(state);
    FAIL() << "restore_latest loaded a corrupt checkpoint";
  } catch (const StateError& error) {
    EXPECT_EQ(error.id(), ErrorId::state_not_found);
    const std::string message = error.what();
    EXPECT_NE(message.find("found 2 unusable"), std::string::npos) << message;
    EXPECT_NE(message.find("ckpt-00000001.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find("ckpt-00000002.safetensors"), std::string::npos) << message;
  }
  EXPECT_TRUE(state == sentinel) << "a failed restore changed the state";
}

INSTANTIATE_TEST_SUITE_P(SyncAndAsync, ManagerFaults, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "async" : "sync"; });

}  // namespace
}  // namespace ckpt::test

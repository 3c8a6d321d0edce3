// Power loss: each scenario's real file-system changes are recorded, and every
// crash state the model of support/crash_states.hpp allows at every crash
// point is materialized and restored the way a restarted job would. The
// promise checked: what is restored is the newest save that returned before
// the crash, or a newer one that had begun, bit for bit; a torn file is never
// loaded as good; the only error is the documented "nothing committed yet".
//
// By default the saved states are small (64 floats: a file of two or three
// sectors) and every state the model allows is checked. CKPT_CRASH_SPACE=long
// (the crash-exhaustive label; see tests/reliability.cmake) saves 4096 floats
// (a file of 33 sectors), whose torn versions are too many to enumerate: up
// to 256 per crash point and namespace choice are sampled.

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "distributed/thread_communicator.hpp"
#include "manager/step_state.hpp"
#include "reliability/report.hpp"
#include "support/crash_states.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

bool long_run() {
  const char* space = std::getenv("CKPT_CRASH_SPACE");
  return space != nullptr && std::string(space) == "long";
}

CrashSpace crash_space() { return CrashSpace{}; }

// The floats of a saved StepState.
std::size_t state_size() { return long_run() ? 4096 : 64; }

// The steps whose save began, and the newest whose save returned, before the crash.
struct SavesBefore {
  std::vector<std::uint64_t> begun;
  std::uint64_t newest_done = 0;  // 0: none
};

SavesBefore saves_before(const Marks& marks) {
  SavesBefore saves;
  for (const std::string& mark : marks) {
    const std::uint64_t step = std::stoull(mark.substr(mark.find(' ') + 1));
    if (mark.rfind("begin ", 0) == 0) saves.begun.push_back(step);
    if (mark.rfind("done ", 0) == 0) saves.newest_done = std::max(saves.newest_done, step);
  }
  return saves;
}

bool holds_step(const StepState& state, std::uint64_t step) {
  const StepState expected = state_at(step, state_size());
  return state.step == step && state.weights.size() == expected.weights.size() &&
         std::memcmp(state.weights.data(), expected.weights.data(), expected.weights.size() * sizeof(float)) == 0;
}

// "" when a restore of `step` (whose values were `exact` or not) keeps the promise.
std::string judge_restored(std::uint64_t step, bool exact, const SavesBefore& saves) {
  if (std::find(saves.begun.begin(), saves.begun.end(), step) == saves.begun.end()) {
    return "restored step " + std::to_string(step) + ", whose save had not begun";
  }
  if (step < saves.newest_done) {
    return "restored step " + std::to_string(step) + ", older than step " + std::to_string(saves.newest_done) +
           " whose save had returned";
  }
  if (!exact) {
    return "step " + std::to_string(step) + " restored with other values than it saved";
  }
  return "";
}

// "" when nothing could be restored and that is allowed.
std::string judge_nothing(const SavesBefore& saves, const std::string& why) {
  if (saves.newest_done == 0) return "";
  return "nothing restored although step " + std::to_string(saves.newest_done) + " was saved: " + why;
}

// Records `scenario`, explores its crash states and reports the counts.
CrashStateCounts run_scenario(const std::string& name,
                              const std::function<void(const std::string&, RecordingFileSystem&)>& scenario,
                              const CrashCheck& check) {
  TempDir temp;
  const std::string root = temp.file("recorded");
  std::filesystem::create_directory(root);
  RecordingFileSystem recorder(root);
  {
    ScopedFileSystem scoped(recorder);
    scenario(root, recorder);
  }
  CrashStates states(recorder.log(), recorder.directory_inodes());
  const CrashStateCounts counts = states.explore(temp.file("crashed"), crash_space(), check);
  std::cout << "[crash states] " << name << ": " << counts.crash_points << " crash points, " << counts.states
            << " distinct states checked ("
            << (counts.sampled ? "sampled, seed " + std::to_string(crash_space().seed) : std::string("exhaustive"))
            << "; the model allows " << static_cast<double>(counts.exhaustive) << "), " << counts.violations
            << " violations" << std::endl;
  report_count("crash states (" + name + ")", counts.states);
  for (const std::string& violation : counts.first_violations) ADD_FAILURE() << name << ": " << violation;
  EXPECT_EQ(counts.violations, 0u);
  return counts;
}

// A single file saved twice over the same path: v1 and v2 are steps 1 and 2.
CrashStateCounts single_file_scenario(const std::string& name, const std::string& codec) {
  SaveOptions options;
  options.codecs = CodecPolicy(codec);
  options.threads = 1;
  const Checkpoint<StepState> checkpoint(options);
  return run_scenario(
      name,
      [&](const std::string& root, RecordingFileSystem& recorder) {
        for (std::uint64_t step : {1, 2}) {
          recorder.mark("begin " + std::to_string(step));
          checkpoint.save(root + "/model.safetensors", state_at(step, state_size()));
          recorder.mark("done " + std::to_string(step));
        }
      },
      [&](const std::string& directory, const Marks& marks) {
        const SavesBefore saves = saves_before(marks);
        const std::string path = directory + "/model.safetensors";
        if (!detail::path_exists(path)) return judge_nothing(saves, "the file is missing");
        StepState state;
        try {
          checkpoint.load(path, state);
        } catch (const Error& error) {
          return std::string("the file under its final name does not load: ") + error.what();
        }
        return judge_restored(state.step, holds_step(state, state.step), saves);
      });
}

// The counts the README's Reliability section gives (default run), as
// floors: the states of a file's torn writes depend on how the writer splits
// its writes (the streaming writer writes a small compressed file in fewer),
// and a change to what a save does on disk changes them, and the README with them.
void expect_counts(const CrashStateCounts& counts, std::uint64_t crash_points, std::uint64_t states) {
  if (long_run()) return;
  EXPECT_FALSE(counts.sampled) << "the default run checks every state the model allows";
  EXPECT_EQ(counts.crash_points, crash_points);
  EXPECT_GE(counts.states, states);
}

TEST(CrashStates, SingleFileSaveRaw) { expect_counts(single_file_scenario("single file (raw)", "raw"), 13, 21); }

TEST(CrashStates, SingleFileSaveCompressed) {
  expect_counts(single_file_scenario("single file (zstd)", "zstd"), 13, 13);
}

// "" when a fresh manager's restore_latest over `directory` keeps the promise.
std::string judge_manager_restore(const std::string& directory, const Marks& marks) {
  const SavesBefore saves = saves_before(marks);
  StepState state = state_at(999999, state_size());
  try {
    CheckpointManager manager(directory);
    const RestoreResult result = manager.restore_latest(state);
    if (!result.skipped.empty()) return "a torn checkpoint under its final name: " + result.skipped[0].reason;
    return judge_restored(result.checkpoint.step, holds_step(state, result.checkpoint.step), saves);
  } catch (const StateError& error) {
    // The documented "nothing committed yet"; "N unusable" would mean torn files.
    if (error.id() == ErrorId::state_not_found && std::string(error.what()).find("found none") != std::string::npos) {
      return judge_nothing(saves, error.what());
    }
    return std::string("restore_latest threw: ") + error.what();
  } catch (const std::exception& error) {
    return std::string("restore_latest threw: ") + error.what();
  }
}

// Four saves with rotation to the newest two, and the index; sync or async.
CrashStateCounts manager_scenario(const std::string& name, bool async) {
  return run_scenario(
      name,
      [&](const std::string& root, RecordingFileSystem& recorder) {
        ManagerOptions options;
        options.retention.max_to_keep = 2;
        options.save.threads = 1;
        options.async = async;
        if (async)
          options.on_save = [&](const SaveEvent& event) { recorder.mark("done " + std::to_string(event.step)); };
        CheckpointManager manager(root + "/run", options);
        for (std::uint64_t step = 1; step <= 4; ++step) {
          // save() would wait for the save in flight anyway; waiting first
          // puts the mark after it, wherever the threads are.
          manager.wait();
          recorder.mark("begin " + std::to_string(step));
          manager.save(step, state_at(step, state_size()));
          if (!async) recorder.mark("done " + std::to_string(step));
        }
        manager.wait();
      },
      [](const std::string& directory, const Marks& marks) {
        return judge_manager_restore(directory + "/run", marks);
      });
}

TEST(CrashStates, ManagerSaveWithRotationAndIndex) { expect_counts(manager_scenario("manager", false), 52, 134); }

TEST(CrashStates, AsyncManagerSave) { expect_counts(manager_scenario("async manager", true), 52, 134); }

// Rank r of two holds rows 3r..3r+2 of a 6x4 weight; its values follow from the step.
struct RankShards {
  std::vector<float> rows;
  std::uint64_t step = 0;
  int rank = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", box_shard(rows, Shape{6, 4}, Shape{static_cast<std::uint64_t>(3 * rank), 0}, Shape{3, 4}));
    ar("step", replicated(step));
  }
};

// The whole weight, as one process loads it.
struct WholeWeight {
  std::vector<float> w;
  std::uint64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", shaped(w, Shape{6, 4}))("step", step);
  }
};

float weight_value(std::uint64_t step, std::size_t index) { return static_cast<float>(step) * 100.0f + 0.5f * index; }

std::string judge_distributed_restore(const std::string& run, const Marks& marks) {
  const SavesBefore saves = saves_before(marks);
  try {
    const std::vector<CommittedCheckpoint> committed = committed_checkpoints(run);
    if (committed.empty()) return judge_nothing(saves, "no committed checkpoint directory");
    SingleProcessCommunicator world;
    DistributedCheckpoint<WholeWeight> checkpoint(world);
    WholeWeight loaded;
    checkpoint.load(committed.back().directory, loaded);
    bool exact = loaded.step == committed.back().step && loaded.w.size() == 24;
    for (std::size_t i = 0; exact && i < loaded.w.size(); ++i) exact = loaded.w[i] == weight_value(loaded.step, i);
    return judge_restored(committed.back().step, exact, saves);
  } catch (const std::exception& error) {
    return std::string("restoring the newest committed checkpoint threw: ") + error.what();
  }
}

// Two ranks save steps 1 and 2 in their own directories, then step 3 over
// step 1's. Async, each rank overwrites its pieces as soon as save() returns
// (the background write must use its own copies), and a save is done when
// wait() returns: the commit runs on a background thread over a duplicate
// communicator (`background`) or in that wait() call.
CrashStateCounts distributed_scenario(const std::string& name, bool async, bool background) {
  return run_scenario(
      name,
      [&](const std::string& root, RecordingFileSystem& recorder) {
        const auto failures = run_ranks(
            2,
            [&](Communicator& communicator) {
              DistributedOptions options;
              options.save.threads = 1;
              options.overwrite = true;
              options.async = async;
              DistributedCheckpoint<RankShards> checkpoint(communicator, options);
              for (std::uint64_t step : {1, 2, 3}) {
                RankShards shards;
                shards.rank = communicator.rank();
                shards.step = step;
                for (std::size_t i = 0; i < 12; ++i) shards.rows.push_back(weight_value(step, 12 * shards.rank + i));
                if (communicator.rank() == 0) recorder.mark("begin " + std::to_string(step));
                checkpoint.save(root + "/run/step-" + std::to_string(step == 3 ? 1 : step), step, shards);
                if (async) {
                  std::fill(shards.rows.begin(), shards.rows.end(), -1.0f);
                  shards.step = 0;
                  checkpoint.wait();
                }
                if (communicator.rank() == 0) recorder.mark("done " + std::to_string(step));
              }
            },
            background);
        for (const std::exception_ptr& failure : failures) {
          if (failure) std::rethrow_exception(failure);
        }
      },
      [](const std::string& directory, const Marks& marks) {
        return judge_distributed_restore(directory + "/run", marks);
      });
}

// The ranks' threads interleave their calls differently from run to run, so
// the counts vary a little; their floors are asserted.
void expect_distributed_counts(const CrashStateCounts& counts) {
  if (long_run()) return;
  EXPECT_FALSE(counts.sampled) << "the default run checks every state the model allows";
  EXPECT_GE(counts.crash_points, 55u);
  EXPECT_GE(counts.states, 150u);
}

TEST(CrashStates, DistributedCommitOfTwoRanks) {
  expect_distributed_counts(distributed_scenario("distributed", false, true));
}

TEST(CrashStates, AsyncDistributedCommitInTheBackground) {
  expect_distributed_counts(distributed_scenario("async distributed (background commit)", true, true));
}

TEST(CrashStates, AsyncDistributedCommitAtTheNextCall) {
  expect_distributed_counts(distributed_scenario("async distributed (commit in wait)", true, false));
}

// Regression (found by the crash states above): a directory the manager or a
// distributed save created was never fsynced into its parent, so a power
// loss could take the directory, with every checkpoint committed in it.
// Every directory created is fsynced into its parent before it is used.
std::string parents_not_synced_after_mkdir(const std::vector<FsCall>& trace) {
  std::string missing;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    if (trace[i].op != FsOp::mkdir) continue;
    const std::string parent = detail::directory_of(trace[i].path);
    const auto synced = std::find_if(trace.begin() + static_cast<std::ptrdiff_t>(i), trace.end(),
                                     [&](const FsCall& call) { return call.op == FsOp::fsync && call.path == parent; });
    if (synced == trace.end()) missing += " '" + trace[i].path + "'";
  }
  return missing;
}

// The calls `work` makes through the seam.
std::vector<FsCall> calls_of(const std::function<void()>& work) {
  FaultFileSystem fs;
  ScopedFileSystem scoped(fs);
  work();
  return fs.trace();
}

std::size_t count_of(const std::vector<FsCall>& calls, FsOp op) {
  return static_cast<std::size_t>(
      std::count_if(calls.begin(), calls.end(), [op](const FsCall& call) { return call.op == op; }));
}

TEST(CrashStates, DirectoriesTheManagerCreatesAreFsyncedIntoTheirParents) {
  TempDir temp;
  const std::vector<FsCall> calls = calls_of([&] { CheckpointManager(temp.file("runs/a/run")).save(1, state_at(1)); });
  EXPECT_EQ(count_of(calls, FsOp::mkdir), 3u);
  EXPECT_EQ(parents_not_synced_after_mkdir(calls), "");
}

TEST(CrashStates, DirectoriesADistributedSaveCreatesAreFsyncedIntoTheirParents) {
  TempDir temp;
  WholeWeight whole;
  whole.w.assign(24, 1.5f);
  const std::vector<FsCall> calls = calls_of([&] {
    SingleProcessCommunicator world;
    DistributedCheckpoint<WholeWeight>(world).save(temp.file("run/step-1"), 1, whole);
  });
  EXPECT_EQ(count_of(calls, FsOp::mkdir), 2u);
  EXPECT_EQ(parents_not_synced_after_mkdir(calls), "");
}

TEST(CrashStates, WithoutDurabilityNewDirectoriesAreNotFsynced) {
  TempDir temp;
  ManagerOptions options;
  options.save.durable = false;
  const std::vector<FsCall> calls =
      calls_of([&] { CheckpointManager(temp.file("run"), options).save(1, state_at(1)); });
  EXPECT_EQ(count_of(calls, FsOp::mkdir), 1u);
  EXPECT_EQ(count_of(calls, FsOp::fsync), 0u);
}

}  // namespace
}  // namespace ckpt::test

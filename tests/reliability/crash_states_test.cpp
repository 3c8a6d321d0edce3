// Power loss: each scenario's real file-system changes are recorded, and every
// crash state the model of support/crash_states.hpp allows at every crash
// point is materialized and restored the way a restarted job would. The
// promise checked: what is restored is the newest save that returned before
// the crash, or a newer one that had begun, bit for bit; a torn file is never
// loaded as good; the only error is the documented "nothing committed yet".
//
// CKPT_CRASH_SPACE=long explores more states per crash point (the
// crash-exhaustive label runs it; see tests/reliability.cmake).

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/ckpt.hpp"
#include "distributed/thread_communicator.hpp"
#include "manager/step_state.hpp"
#include "reliability/report.hpp"
#include "support/crash_states.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

CrashSpace crash_space() {
  const char* space = std::getenv("CKPT_CRASH_SPACE");
  if (space != nullptr && std::string(space) == "long") return CrashSpace{4096, 256, 20261130};
  return CrashSpace{};
}

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
  const StepState expected = state_at(step);
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
CrashStateCounts run_scenario(const std::string& name, const std::function<void(const std::string&, RecordingFileSystem&)>& scenario,
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
            << " distinct states checked (" << (counts.sampled ? "sampled, seed " + std::to_string(crash_space().seed)
                                                               : std::string("exhaustive"))
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
          checkpoint.save(root + "/model.safetensors", state_at(step));
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

TEST(CrashStates, SingleFileSaveRaw) {
  const CrashStateCounts counts = single_file_scenario("single file (raw)", "raw");
  EXPECT_FALSE(counts.sampled);
  EXPECT_GE(counts.states, 20u);
}

TEST(CrashStates, SingleFileSaveCompressed) {
  const CrashStateCounts counts = single_file_scenario("single file (zstd)", "zstd");
  EXPECT_FALSE(counts.sampled);
  EXPECT_GE(counts.states, 20u);
}

// "" when a fresh manager's restore_latest over `directory` keeps the promise.
std::string judge_manager_restore(const std::string& directory, const Marks& marks) {
  const SavesBefore saves = saves_before(marks);
  StepState state = state_at(999999);
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
        if (async) options.on_save = [&](const SaveEvent& event) { recorder.mark("done " + std::to_string(event.step)); };
        CheckpointManager manager(root + "/run", options);
        for (std::uint64_t step = 1; step <= 4; ++step) {
          recorder.mark("begin " + std::to_string(step));
          manager.save(step, state_at(step));
          if (!async) recorder.mark("done " + std::to_string(step));
        }
        manager.wait();
      },
      [](const std::string& directory, const Marks& marks) {
        return judge_manager_restore(directory + "/run", marks);
      });
}

TEST(CrashStates, ManagerSaveWithRotationAndIndex) {
  const CrashStateCounts counts = manager_scenario("manager", false);
  EXPECT_GE(counts.states, 100u);
}

TEST(CrashStates, AsyncManagerSave) {
  const CrashStateCounts counts = manager_scenario("async manager", true);
  EXPECT_GE(counts.states, 100u);
}

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

TEST(CrashStates, DistributedCommitOfTwoRanks) {
  const CrashStateCounts counts = run_scenario(
      "distributed",
      [](const std::string& root, RecordingFileSystem& recorder) {
        const auto failures = run_ranks(2, [&](Communicator& communicator) {
          DistributedOptions options;
          options.save.threads = 1;
          options.overwrite = true;
          DistributedCheckpoint<RankShards> checkpoint(communicator, options);
          // Steps 1 and 2 in their own directories, then step 3 over step 1's.
          for (std::uint64_t step : {1, 2, 3}) {
            RankShards shards;
            shards.rank = communicator.rank();
            shards.step = step;
            for (std::size_t i = 0; i < 12; ++i) shards.rows.push_back(weight_value(step, 12 * shards.rank + i));
            if (communicator.rank() == 0) recorder.mark("begin " + std::to_string(step));
            checkpoint.save(root + "/run/step-" + std::to_string(step == 3 ? 1 : step), step, shards);
            if (communicator.rank() == 0) recorder.mark("done " + std::to_string(step));
          }
        });
        for (const std::exception_ptr& failure : failures) {
          if (failure) std::rethrow_exception(failure);
        }
      },
      [](const std::string& directory, const Marks& marks) { return judge_distributed_restore(directory + "/run", marks); });
  // The ranks' threads interleave their calls differently from run to run,
  // so the count varies a little; its floor is asserted.
  EXPECT_GE(counts.states, 100u);
}

}  // namespace
}  // namespace ckpt::test

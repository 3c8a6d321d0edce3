// Fault injection at every file-system call of a save: each call fails in
// turn (with the errnos the kernel really returns for it), and the process
// crashes in turn before each call. Whatever happens, the path holds the old
// checkpoint or the new one, complete, and a failed save leaves no temp file.

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "large_state.hpp"
#include "report.hpp"
#include "sample_checkpoint.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

// The errnos each call can return on a local or network file system.
std::vector<int> errors_of(FsOp op) {
  switch (op) {
    case FsOp::open: return {EACCES, ENOSPC, EMFILE};
    case FsOp::pwrite: return {EIO, ENOSPC, EDQUOT};
    case FsOp::fsync: return {EIO, ENOSPC};
    case FsOp::close: return {EIO};
    case FsOp::rename: return {EIO, EXDEV};
    case FsOp::unlink: return {EIO, EBUSY};
    default: return {};  // a call a save does not make (SetUp checks)
  }
}

// The ids a failure of `op` may be reported with (open and close serve both
// the temp file and the directory fsync).
std::set<ErrorId> ids_for(FsOp op, int error) {
  if (error == ENOSPC || error == EDQUOT) return {ErrorId::io_no_space};
  switch (op) {
    case FsOp::open: return {ErrorId::io_open, ErrorId::io_sync};
    case FsOp::pwrite: return {ErrorId::io_write};
    case FsOp::fsync: return {ErrorId::io_sync};
    case FsOp::close: return {ErrorId::io_write, ErrorId::io_sync};
    case FsOp::rename: return {ErrorId::io_rename};
    case FsOp::unlink: return {ErrorId::io_remove};
    default: return {};
  }
}

// 1-based position in `trace` of the `nth` call of `op`.
std::size_t position_of(const std::vector<FsCall>& trace, FsOp op, std::uint64_t nth) {
  for (std::size_t i = 0; i < trace.size(); ++i) {
    if (trace[i].op == op && --nth == 0) return i + 1;
  }
  return 0;
}

struct SaveScenario {
  std::string codec;
  bool overwrite;  // an older checkpoint already sits at the path
};

std::string describe(const SaveScenario& scenario) {
  return scenario.codec + (scenario.overwrite ? " over an older checkpoint" : " to a new path");
}

void PrintTo(const SaveScenario& scenario, std::ostream* out) { *out << describe(scenario); }

// The cases of one scenario, which the README's Reliability section adds up
// to its 236 fault cases for saves: a raw save makes 35 calls that can fail
// and 14 to crash before, an encoded one 50 and 19 (its chunks are written
// one by one). A change to what a save does on disk changes them, and the
// README with them.
struct SaveFaultCounts {
  std::uint64_t failing_calls;
  std::uint64_t crashes;
};
SaveFaultCounts readme_counts(const SaveScenario& scenario) {
  return scenario.codec == "raw" ? SaveFaultCounts{35, 14} : SaveFaultCounts{50, 19};
}

std::string scenario_name(const ::testing::TestParamInfo<SaveScenario>& info) {
  std::string name = info.param.codec + (info.param.overwrite ? "_overwrite" : "_fresh");
  std::replace(name.begin(), name.end(), '+', '_');
  return name;
}

class SaveFaults : public ::testing::TestWithParam<SaveScenario> {
 protected:
  void SetUp() override {
    reset();
    FaultFileSystem counting;
    {
      ScopedFileSystem scoped(counting);
      save_sample(path_, fresh_, GetParam().codec);
    }
    trace_ = counting.trace();
    for (std::size_t i = 0; i < trace_.size(); ++i) {
      if (trace_[i].op == FsOp::rename) rename_position_ = i + 1;
      ASSERT_FALSE(errors_of(trace_[i].op).empty()) << "no faults listed for the save's " << fs_op_name(trace_[i].op);
    }
    ASSERT_NE(rename_position_, 0u) << "a save must publish its file by rename";
    reset();
  }

  // The directory as it was before the save under test.
  void reset() {
    for (const std::string& name : dir_.names()) std::filesystem::remove(dir_.file(name));
    if (GetParam().overwrite) save_sample(path_, old_, GetParam().codec);
  }

  // What a save that stopped at `stop_position` of the trace may leave: the new
  // file once the rename happened, before it the old file (or nothing).
  void expect_old_or_new(bool renamed, const std::string& context) {
    if (renamed) {
      EXPECT_EQ(difference(path_, fresh_), "") << context;
    } else if (GetParam().overwrite) {
      EXPECT_EQ(difference(path_, old_), "") << context;
    } else {
      EXPECT_FALSE(std::filesystem::exists(path_)) << context;
    }
  }

  TempDir dir_;
  std::string path_ = dir_.file("model.ckpt");
  SampleCheckpoint old_ = make_sample(1);
  SampleCheckpoint fresh_ = make_sample(2);
  std::vector<FsCall> trace_;
  std::size_t rename_position_ = 0;
};

TEST_P(SaveFaults, EveryFailingCallLeavesOldOrNewCheckpointAndNoTempFile) {
  std::uint64_t cases = 0;
  for (FsOp op : all_fs_ops) {
    std::uint64_t calls = 0;
    for (const FsCall& call : trace_) calls += call.op == op;
    for (std::uint64_t nth = 1; nth <= calls; ++nth) {
      for (int error : errors_of(op)) {
        const std::string context =
            std::string("failing ") + fs_op_name(op) + " #" + std::to_string(nth) + " with " + std::strerror(error);
        const std::size_t position = position_of(trace_, op, nth);
        bool threw = false;
        {
          FaultFileSystem fs;
          fs.fail_at(op, nth, error);
          ScopedFileSystem scoped(fs);
          try {
            save_sample(path_, fresh_, GetParam().codec);
          } catch (const IoError& e) {
            threw = true;
            EXPECT_EQ(ids_for(op, error).count(e.id()), 1u) << context << ": " << e.what();
            // The checkpoint (or its temp file), or the directory whose fsync failed.
            EXPECT_TRUE(e.file().find("model.ckpt") != std::string::npos || e.file() == dir_.path())
                << context << ": " << e.what();
            if (error == ENOSPC) {
              EXPECT_NE(std::string(e.what()).find("full"), std::string::npos) << e.what();
            }
          }
        }
        // Only a failing close may go unreported: the data was already synced.
        if (op != FsOp::close) {
          EXPECT_TRUE(threw) << context << ": the save reported success";
        }
        const bool renamed = !threw || rename_position_ < position;
        EXPECT_EQ(dir_.names(),
                  renamed || GetParam().overwrite ? std::vector<std::string>{"model.ckpt"} : std::vector<std::string>{})
            << context;
        expect_old_or_new(renamed, context);
        // The failure is gone: the same save now succeeds.
        save_sample(path_, fresh_, GetParam().codec);
        EXPECT_EQ(difference(path_, fresh_), "") << context << ", then saving again";
        reset();
        ++cases;
      }
    }
  }
  report_count("save faults (" + describe(GetParam()) + ", failing calls)", cases);
  EXPECT_EQ(cases, readme_counts(GetParam()).failing_calls);
}

TEST_P(SaveFaults, CrashBeforeAnyCallLeavesOldOrNewCheckpoint) {
  std::uint64_t crashes = 0;
  for (std::uint64_t nth = 1; nth <= trace_.size() + 1; ++nth) {
    const std::string context = "crash before call #" + std::to_string(nth) + " of " + std::to_string(trace_.size());
    const ChildOutcome outcome = run_crashing_at(nth, [&] { save_sample(path_, fresh_, GetParam().codec); });
    ASSERT_EQ(outcome, nth <= trace_.size() ? ChildOutcome::crashed : ChildOutcome::completed) << context;
    expect_old_or_new(rename_position_ < nth, context);
    // Besides the checkpoint, a crash may leave only a temp file a manager recognises and removes.
    for (const std::string& name : dir_.names()) {
      if (name != "model.ckpt") {
        EXPECT_TRUE(detail::is_temp_file_name(name)) << context << ": left " << name;
      }
    }
    reset();
    crashes += outcome == ChildOutcome::crashed;
  }
  report_count("save faults (" + describe(GetParam()) + ", crashes)", crashes);
  EXPECT_EQ(crashes, readme_counts(GetParam()).crashes);
}

// Against a power cut the order of the calls matters, not only their results:
// the data is synced before the rename publishes it, and the rename is synced
// (directory fsync) before the save returns; the final name is never written.
TEST_P(SaveFaults, CallOrderMakesTheSaveDurable) {
  const std::string temp = trace_.front().path;
  EXPECT_TRUE(detail::is_temp_file_name(detail::file_name_of(temp))) << temp;
  std::optional<std::size_t> temp_synced, renamed, directory_synced;
  for (std::size_t i = 0; i < trace_.size(); ++i) {
    const FsCall& call = trace_[i];
    if (call.op == FsOp::pwrite) {
      EXPECT_EQ(call.path, temp) << "write #" << i;
    }
    if (call.op == FsOp::fsync && call.path == temp) temp_synced = i;
    if (call.op == FsOp::rename) {
      EXPECT_EQ(call.path, temp);
      EXPECT_EQ(call.target, path_);
      renamed = i;
    }
    if (call.op == FsOp::fsync && call.path == dir_.path() && renamed) directory_synced = i;
    if (call.op == FsOp::open) {
      EXPECT_NE(call.path, path_) << "the final name is opened directly";
    }
  }
  ASSERT_TRUE(temp_synced && renamed && directory_synced);
  EXPECT_LT(*temp_synced, *renamed);
  EXPECT_EQ(trace_.back().op, FsOp::close) << "after the directory fsync only its close may follow";
}

// Short writes and EINTR are legal kernel answers, not errors.
TEST_P(SaveFaults, ShortAndInterruptedWritesStillSaveEveryByte) {
  FaultFileSystem fs;
  fs.make_writes_short(5);
  {
    ScopedFileSystem scoped(fs);
    save_sample(path_, fresh_, GetParam().codec);
  }
  EXPECT_EQ(difference(path_, fresh_), "");
  EXPECT_GT(fs.count(FsOp::pwrite), trace_.size());
}

// Records the ranges a save asks the kernel to start writing to disk.
class WriteBackRecorder : public FaultFileSystem {
 public:
  int start_writeback(int fd, std::uint64_t offset, std::uint64_t size) override {
    ranges.emplace_back(offset, size);
    return FaultFileSystem::start_writeback(fd, offset, size);
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
};

// 40 MiB in tensors of 10 MiB, saved durably, the last tensor compressed.
SaveOptions large_save_options() {
  SaveOptions options;
  options.codecs = CodecPolicy("raw").for_names("layer3/*", "shuffle+zstd");
  options.threads = 2;
  return options;
}
const LargeState& large_state() {
  static const LargeState state(4, std::size_t(10) << 20);
  return state;
}

void expect_loads(const std::string& path) {
  const Reader reader(path);
  for (const NamedTensor& saved : large_state().views) {
    const Tensor loaded = reader.tensor(saved.name);
    ASSERT_EQ(loaded.nbytes(), saved.view.nbytes());
    EXPECT_EQ(std::memcmp(loaded.data(), saved.view.data(), saved.view.nbytes()), 0) << saved.name;
  }
}

// A durable save starts write-back as it writes, so that its closing fsync
// waits for the last few megabytes, not for the whole file: the calls cover
// the data in order of writing and come before that fsync.
TEST(WriteBack, DurableSaveStartsWritingEachPartToDiskBeforeTheFinalFsync) {
  TempDir dir;
  const std::string path = dir.file("large.ckpt");
  WriteBackRecorder fs;
  {
    ScopedFileSystem scoped(fs);
    write_checkpoint(path, large_state().views, {}, large_save_options());
  }
  const std::uint64_t file_bytes = std::filesystem::file_size(path);
  std::uint64_t started = 0;
  for (const auto& [offset, size] : fs.ranges) {
    EXPECT_LE(offset + size, file_bytes);
    started += size;
  }
  // Every full 8 MiB step of the 30 MiB written raw, at least.
  EXPECT_GE(started, std::uint64_t(24) << 20);
  const std::vector<FsCall> trace = fs.trace();
  std::size_t last_writeback = 0, last_fsync = 0;
  for (std::size_t i = 0; i < trace.size(); ++i) {
    if (trace[i].op == FsOp::writeback) last_writeback = i;
    if (trace[i].op == FsOp::fsync && detail::is_temp_file_name(detail::file_name_of(trace[i].path))) last_fsync = i;
  }
  EXPECT_LT(last_writeback, last_fsync);
  expect_loads(path);
}

// Without `durable` nothing is synced, so nothing is pushed to disk early either.
TEST(WriteBack, SaveThatIsNotDurableLeavesWriteBackToTheKernel) {
  TempDir dir;
  SaveOptions options = large_save_options();
  options.durable = false;
  FaultFileSystem fs;
  ScopedFileSystem scoped(fs);
  write_checkpoint(dir.file("large.ckpt"), large_state().views, {}, options);
  EXPECT_EQ(fs.count(FsOp::writeback), 0u);
  EXPECT_EQ(fs.count(FsOp::fsync), 0u);
}

// Starting write-back is a hint: its failure loses nothing (an error in the
// write-back itself is reported by the fsync that follows, tested above with
// failing fsyncs), so the save completes and loads.
TEST(WriteBack, FailedWriteBackHintDoesNotFailTheSave) {
  TempDir dir;
  const std::string path = dir.file("large.ckpt");
  FaultFileSystem fs;
  fs.fail_at(FsOp::writeback, 1, EIO);
  fs.fail_at(FsOp::writeback, 2, EINVAL);
  {
    ScopedFileSystem scoped(fs);
    write_checkpoint(path, large_state().views, {}, large_save_options());
  }
  EXPECT_GE(fs.count(FsOp::writeback), 3u);
  expect_loads(path);
}

INSTANTIATE_TEST_SUITE_P(Codecs, SaveFaults,
                         ::testing::Values(SaveScenario{"raw", true}, SaveScenario{"raw", false},
                                           SaveScenario{"shuffle+zstd", true}, SaveScenario{"zstd", false}),
                         scenario_name);

}  // namespace
}  // namespace ckpt::test

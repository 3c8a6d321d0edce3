// Every file operation ckpt makes passes through detail::FileSystem. The
// tests reach their files only through a FaultFileSystem serving a directory
// that does not exist on disk, so any call bypassing the seam would fail;
// the traces show which calls each part makes. Failures of the calls that
// read, lock, list and create directories are reported with the error ids
// docs/reliability.md and docs/manager.md promise, naming the file.

#include <gtest/gtest.h>
#include <sys/file.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "ckpt/manager.hpp"
#include "report.hpp"
#include "sample_checkpoint.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"
#if defined(CKPT_WITH_NPZ)
#include "ckpt/interop/npz.hpp"
#endif

namespace ckpt::test {
namespace {

constexpr const char* virtual_root = "/ckpt-seam-test-not-on-disk";

struct SeamWeights {
  std::vector<float> values = std::vector<float>(16);
  template <class Archive>
  void describe(Archive& ar) {
    ar("values", values);
  }
};

SeamWeights weights_at(std::uint64_t step) {
  SeamWeights weights;
  for (std::size_t i = 0; i < weights.values.size(); ++i) weights.values[i] = static_cast<float>(step * 100 + i);
  return weights;
}

ManagerOptions keep_two() {
  ManagerOptions options;
  options.retention.max_to_keep = 2;
  options.save.threads = 1;
  return options;
}

template <class Call>
void expect_io_error(Call call, ErrorId id, const std::string& file, const std::string& message) {
  const auto error = expect_error<IoError>(call, id, {message});
  if (!error) return;
  EXPECT_EQ(error->file(), file) << error->what();
}

// The operations of `fs`'s trace on `path`, in order.
std::vector<FsOp> ops_on(const FaultFileSystem& fs, const std::string& path) {
  std::vector<FsOp> ops;
  for (const FsCall& call : fs.trace()) {
    if (call.path == path) ops.push_back(call.op);
  }
  return ops;
}

bool made(const FaultFileSystem& fs, FsOp op, const std::string& path, const std::string& target = {}) {
  for (const FsCall& call : fs.trace()) {
    if (call.op == op && call.path == path && call.target == target) return true;
  }
  return false;
}

class Seam : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(std::filesystem::exists(virtual_root));
    fs_.serve(virtual_root, dir_.path());
  }

  // Where ckpt is told a file is: reachable through fs_ only.
  static std::string seam_path(const std::string& name) { return std::string(virtual_root) + "/" + name; }

  TempDir dir_;
  FaultFileSystem fs_;
};

TEST_F(Seam, ReaderOpensMapsAndReleasesTheFileThroughTheSeam) {
  const SampleCheckpoint sample = make_sample(3);
  save_sample(dir_.file("model.ckpt"), sample, "shuffle+zstd");
  {
    ScopedFileSystem scoped(fs_);
    EXPECT_EQ(difference(seam_path("model.ckpt"), sample), "");
  }
  EXPECT_EQ(ops_on(fs_, seam_path("model.ckpt")), (std::vector<FsOp>{FsOp::open, FsOp::fstat, FsOp::map, FsOp::close}));
  EXPECT_EQ(fs_.count(FsOp::unmap), 1u) << "the mapping is released when the reader goes";
  EXPECT_EQ(fs_.total_calls(), 5u);
}

TEST_F(Seam, ManagerCreatesLocksListsIndexesRotatesAndRestoresThroughTheSeam) {
  const std::string directory = seam_path("runs/first");
  {
    ScopedFileSystem scoped(fs_);
    {
      CheckpointManager manager(directory, keep_two());
      for (std::uint64_t step = 1; step <= 3; ++step) manager.save(step, weights_at(step));
    }
    CheckpointManager restarted(directory, keep_two());  // reads the index the first one wrote
    SeamWeights restored;
    EXPECT_EQ(restarted.restore_latest(restored).checkpoint.step, 3u);
    EXPECT_EQ(restored.values, weights_at(3).values);
  }
  EXPECT_TRUE(made(fs_, FsOp::mkdir, seam_path("runs")));
  EXPECT_TRUE(made(fs_, FsOp::mkdir, directory));
  EXPECT_TRUE(made(fs_, FsOp::flock, directory + "/.ckpt.lock"));
  EXPECT_TRUE(made(fs_, FsOp::list, directory));
  EXPECT_TRUE(made(fs_, FsOp::pread, directory + "/.ckpt-index.json"));
  EXPECT_TRUE(made(fs_, FsOp::unlink, directory + "/ckpt-00000001.safetensors")) << "the rotation of step 1";
  EXPECT_TRUE(made(fs_, FsOp::map, directory + "/ckpt-00000003.safetensors")) << "the restore";
  EXPECT_EQ(TempDir::names_in(dir_.file("runs/first")),
            (std::vector<std::string>{".ckpt-index.json", ".ckpt.lock", "ckpt-00000002.safetensors",
                                      "ckpt-00000003.safetensors"}));
}

TEST_F(Seam, FailedOpenForReadIsIoError101NamingTheFile) {
  save_sample(dir_.file("model.ckpt"), make_sample(1));
  fs_.fail_at(FsOp::open, 1, EACCES);
  ScopedFileSystem scoped(fs_);
  ASSERT_EQ(static_cast<int>(ErrorId::io_open), 101);
  expect_io_error([] { Reader reader(seam_path("model.ckpt")); }, ErrorId::io_open, seam_path("model.ckpt"),
                  "open failed: Permission denied");
}

TEST_F(Seam, FailedFstatAndMmapAreIoErrorsNamingTheFileAndLeakNoDescriptor) {
  save_sample(dir_.file("model.ckpt"), make_sample(1));
  const std::vector<std::pair<FsOp, ErrorId>> cases = {{FsOp::fstat, ErrorId::io_read}, {FsOp::map, ErrorId::io_map}};
  for (const auto& [op, id] : cases) {
    FaultFileSystem fs;
    fs.serve(virtual_root, dir_.path());
    fs.fail_at(op, 1, op == FsOp::map ? ENOMEM : EIO);
    {
      ScopedFileSystem scoped(fs);
      expect_io_error([] { Reader reader(seam_path("model.ckpt")); }, id, seam_path("model.ckpt"),
                      std::string(fs_op_name(op)) + " failed");
    }
    EXPECT_EQ(fs.count(FsOp::close), fs.count(FsOp::open)) << fs_op_name(op);
  }
}

TEST_F(Seam, LockHeldElsewhereIsStateLockedAndAFailedFlockIsAnIoError) {
  const std::string directory = seam_path("run");
  const std::string lock_file = directory + "/.ckpt.lock";
  {
    fs_.fail_at(FsOp::flock, 1, EWOULDBLOCK);
    ScopedFileSystem scoped(fs_);
    try {
      CheckpointManager manager(directory, keep_two());
      ADD_FAILURE() << "the manager opened a directory another writer holds";
    } catch (const StateError& error) {
      EXPECT_EQ(error.id(), ErrorId::state_locked) << error.what();
      EXPECT_EQ(error.file(), lock_file) << error.what();
      EXPECT_NE(std::string(error.what()).find("already used by another checkpoint manager"), std::string::npos);
    }
  }
  // A file system without locks (ENOLCK): an I/O failure, not another writer.
  FaultFileSystem no_locks;
  no_locks.serve(virtual_root, dir_.path());
  no_locks.fail_at(FsOp::flock, 1, ENOLCK);
  {
    ScopedFileSystem scoped(no_locks);
    expect_io_error([&] { CheckpointManager manager(directory, keep_two()); }, ErrorId::io_open, lock_file,
                    "flock failed");
  }
  for (const FaultFileSystem* fs : {&fs_, &no_locks}) {
    std::uint64_t opened = 0, closed = 0;
    for (const FsCall& call : fs->trace()) {
      opened += call.op == FsOp::open && call.path == lock_file;
      closed += call.op == FsOp::close && call.path == lock_file;
    }
    EXPECT_EQ(opened, closed) << "the lock file's descriptor was left open";
  }
  ScopedFileSystem scoped(fs_);
  CheckpointManager manager(directory, keep_two());  // the failures held nothing
  manager.save(1, weights_at(1));
}

TEST_F(Seam, FailedDirectoryListingIsReportedNotTakenForAnEmptyDirectory) {
  const std::string directory = seam_path("run");
  {
    ScopedFileSystem scoped(fs_);
    CheckpointManager manager(directory, keep_two());
    manager.save(1, weights_at(1));
  }
  for (const bool read_only : {false, true}) {
    FaultFileSystem fs;
    fs.serve(virtual_root, dir_.path());
    fs.fail_at(FsOp::list, 1, EIO);
    ManagerOptions options = keep_two();
    options.read_only = read_only;
    ScopedFileSystem scoped(fs);
    expect_io_error([&] { CheckpointManager manager(directory, options); }, ErrorId::io_read, directory,
                    "listing the directory failed: Input/output error");
  }
  FaultFileSystem fs;
  fs.serve(virtual_root, dir_.path());
  ScopedFileSystem scoped(fs);
  CheckpointManager manager(directory, keep_two());
  fs.fail_at(FsOp::list, fs.count(FsOp::list) + 1, EACCES);
  expect_io_error([&] { manager.list(); }, ErrorId::io_read, directory, "Permission denied");
  EXPECT_EQ(manager.list().size(), 1u);
}

TEST_F(Seam, ReadOnlyManagerOfADirectoryNotCreatedYetListsNothing) {
  ManagerOptions options = keep_two();
  options.read_only = true;
  ScopedFileSystem scoped(fs_);
  CheckpointManager reader(seam_path("not-yet"), options);
  EXPECT_TRUE(reader.list().empty());
  EXPECT_EQ(fs_.count(FsOp::mkdir), 0u) << "a read-only manager creates nothing";
}

TEST_F(Seam, UnreadableIndexIsRebuiltFromTheCheckpoints) {
  const std::string directory = seam_path("run");
  {
    ScopedFileSystem scoped(fs_);
    CheckpointManager manager(directory, keep_two());
    manager.save(1, weights_at(1), {std::nullopt, {{"loss", 0.5}}});
    manager.save(2, weights_at(2), {std::nullopt, {{"loss", 0.25}}});
  }
  ManagerOptions options = keep_two();
  options.read_only = true;
  FaultFileSystem fs;
  fs.serve(virtual_root, dir_.path());
  ScopedFileSystem scoped(fs);
  CheckpointManager reader(directory, options);
  fs.fail_at(FsOp::pread, fs.count(FsOp::pread) + 1, EIO);
  const std::vector<CheckpointInfo> listed = reader.list();
  EXPECT_TRUE(made(fs, FsOp::map, directory + "/ckpt-00000002.safetensors")) << "the facts were read from the file";
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[1].step, 2u);
  EXPECT_EQ(listed[1].metrics.at("loss"), 0.25) << "read back from the checkpoint's own metadata";
}

TEST_F(Seam, FailedMkdirIsIoErrorNamingTheDirectory) {
  fs_.fail_at(FsOp::mkdir, 2, EACCES);
  ScopedFileSystem scoped(fs_);
  expect_io_error([] { CheckpointManager manager(seam_path("a/b"), keep_two()); }, ErrorId::io_open, seam_path("a/b"),
                  "creating the directory failed: Permission denied");
  EXPECT_EQ(TempDir::names_in(dir_.path()), std::vector<std::string>{"a"});
}

TEST_F(Seam, FailedStatOfACheckpointIsReported) {
  const std::string directory = seam_path("run");
  ScopedFileSystem scoped(fs_);
  CheckpointManager manager(directory, keep_two());
  manager.save(1, weights_at(1));
  std::uint64_t stats_before_listing = fs_.count(FsOp::stat);
  fs_.fail_at(FsOp::stat, stats_before_listing + 1, EIO);
  expect_io_error([&] { manager.list(); }, ErrorId::io_read, directory + "/ckpt-00000001.safetensors", "stat failed");
}

#if defined(CKPT_WITH_NPZ)
// Empty when the archive at `path` holds exactly `sample`; else what differs.
std::string npz_difference(const std::string& path, const SampleCheckpoint& sample) {
  const TensorSet loaded = load_npz(path);
  if (loaded.metadata != sample.metadata) return "metadata " + loaded.metadata.dump();
  if (loaded.tensors.size() != sample.tensors.size()) return std::to_string(loaded.tensors.size()) + " tensors";
  for (std::size_t i = 0; i < sample.tensors.size(); ++i) {
    const auto& [name, tensor] = loaded.tensors[i];
    const TensorView& expected = sample.tensors[i].view;
    if (name != sample.tensors[i].name || tensor.dtype() != expected.dtype() || tensor.shape() != expected.shape() ||
        (expected.nbytes() != 0 && std::memcmp(tensor.data(), expected.data(), expected.nbytes()) != 0)) {
      return "tensor '" + sample.tensors[i].name + "' differs";
    }
  }
  return {};
}

TEST_F(Seam, NpzExportAndImportGoThroughTheSeam) {
  const SampleCheckpoint sample = make_sample(4);
  const std::string path = seam_path("model.npz");
  {
    ScopedFileSystem scoped(fs_);
    save_npz(path, sample.tensors, sample.metadata, NpzOptions{true, 1, true});
    EXPECT_EQ(npz_difference(path, sample), "");
  }
  // Published like a checkpoint: a temp file written, synced and renamed, then the directory synced.
  const std::vector<FsCall> trace = fs_.trace();
  ASSERT_FALSE(trace.empty());
  const std::string temp = trace.front().path;
  EXPECT_TRUE(detail::is_temp_file_name(detail::file_name_of(temp))) << temp;
  EXPECT_TRUE(made(fs_, FsOp::fsync, temp));
  EXPECT_TRUE(made(fs_, FsOp::rename, temp, path));
  EXPECT_TRUE(made(fs_, FsOp::fsync, virtual_root));
  EXPECT_EQ(ops_on(fs_, path), (std::vector<FsOp>{FsOp::open, FsOp::fstat, FsOp::map, FsOp::close}))
      << "the import maps the file; libzip never opens it";
  EXPECT_EQ(TempDir::names_in(dir_.path()), std::vector<std::string>{"model.npz"});
}

TEST_F(Seam, NpzOfNoTensorsIsAnEmptyArchiveThatLoads) {
  ScopedFileSystem scoped(fs_);
  save_npz(seam_path("empty.npz"), {}, nullptr);
  EXPECT_EQ(read_file(dir_.file("empty.npz")), std::string("PK\x05\x06", 4) + std::string(18, '\0'));
  const TensorSet loaded = load_npz(seam_path("empty.npz"));
  EXPECT_TRUE(loaded.tensors.empty());
}

TEST_F(Seam, FailedNpzOpenIsIoErrorNamingTheArchive) {
  const SampleCheckpoint sample = make_sample(1);
  save_npz(dir_.file("model.npz"), sample.tensors);
  fs_.fail_at(FsOp::open, 1, EACCES);
  ScopedFileSystem scoped(fs_);
  expect_io_error([] { load_npz(seam_path("model.npz")); }, ErrorId::io_open, seam_path("model.npz"),
                  "Permission denied");
}

// An export is all or nothing, like a checkpoint save: every call of it
// fails in turn, then the process crashes before each in turn.
TEST_F(Seam, NpzExportFailingOrCrashingAtAnyCallLeavesTheOldArchiveOrTheNew) {
  const SampleCheckpoint old_sample = make_sample(1), new_sample = make_sample(2);
  const std::string path = dir_.file("model.npz");
  const auto save = [&](const SampleCheckpoint& sample) { save_npz(path, sample.tensors, sample.metadata); };
  save(old_sample);
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    save(new_sample);
  }
  const std::vector<FsCall> trace = counting.trace();
  std::uint64_t cases = 0;
  // The archive's bytes hold the time of the save: compare what loads.
  const auto expect_old_or_new = [&](const std::string& context) {
    const std::string old_difference = npz_difference(path, old_sample);
    EXPECT_TRUE(old_difference.empty() || npz_difference(path, new_sample).empty())
        << context << ": " << old_difference;
    for (const std::string& name : TempDir::names_in(dir_.path())) {
      EXPECT_TRUE(name == "model.npz" || detail::is_temp_file_name(name)) << context << ": left " << name;
    }
    save(old_sample);
  };
  for (std::size_t position = 1; position <= trace.size(); ++position) {
    const FsOp op = trace[position - 1].op;
    std::uint64_t nth = 0;
    for (std::size_t i = 0; i < position; ++i) nth += trace[i].op == op;
    const std::string context = std::string("failing ") + fs_op_name(op) + " #" + std::to_string(nth);
    FaultFileSystem fs;
    fs.fail_at(op, nth, EIO);
    {
      ScopedFileSystem scoped(fs);
      try {
        save(new_sample);
        EXPECT_EQ(op, FsOp::close) << context << ": only a failed close after the data was synced may pass";
      } catch (const IoError& error) {
        EXPECT_NE(std::string(error.what()).find(dir_.path()), std::string::npos) << context << ": " << error.what();
      }
    }
    EXPECT_EQ(TempDir::names_in(dir_.path()), std::vector<std::string>{"model.npz"}) << context;
    expect_old_or_new(context);
    ++cases;
  }
  for (std::size_t nth = 1; nth <= trace.size(); ++nth) {
    const std::string context = "crash before call #" + std::to_string(nth);
    ASSERT_EQ(run_crashing_at(nth, [&] { save(new_sample); }), ChildOutcome::crashed) << context;
    expect_old_or_new(context);
    ++cases;
  }
  report_count("npz export faults", cases);
  EXPECT_EQ(cases, 142u) << "the README's Reliability section counts 142 fault cases for .npz exports";
}
#endif

}  // namespace
}  // namespace ckpt::test

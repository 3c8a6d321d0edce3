// Disk full: a save that does not fit fails with io_no_space and a message
// saying the disk is full, removes its temp file, deletes nothing, and the
// next save after room is freed succeeds. Once with a real full file system
// (a 1 MiB tmpfs, when the test may mount one) and always through the fault
// layer (ENOSPC once the space runs out, as the kernel reports it).

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

// A checkpoint of one F32 tensor of `bytes` bytes, valued by `seed`.
struct BigCheckpoint {
  std::vector<float> values;
  explicit BigCheckpoint(std::size_t bytes, float seed) : values(bytes / sizeof(float)) {
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = seed + static_cast<float>(i);
  }
  void save(const std::string& path) const {
    write_checkpoint(path, {{"weights", TensorView(values.data(), {values.size()})}}, {{"seed", values[0]}});
  }
  bool is_in(const std::string& path) const {
    const Tensor loaded = Reader(path).tensor("weights");
    return loaded.nbytes() == values.size() * sizeof(float) &&
           std::memcmp(loaded.data(), values.data(), loaded.nbytes()) == 0;
  }
};

void expect_no_space_error(const IoError& e, const std::string& file_name) {
  ckpt::test::expect_id_and_message(e, ErrorId::io_no_space, {"disk is full", file_name});
}

TEST(DiskFull, FaultLayerEnospcFailsCleanlyAndTheNextSaveSucceeds) {
  TempDir dir;
  const BigCheckpoint committed(4096, 1), next(64 * 1024, 2);
  committed.save(dir.file("step-1.ckpt"));
  for (const std::uint64_t room : {std::uint64_t(0), std::uint64_t(100), std::uint64_t(40000)}) {
    FaultFileSystem fs;
    fs.limit_space(room);
    {
      ScopedFileSystem scoped(fs);
      try {
        next.save(dir.file("step-2.ckpt"));
        ADD_FAILURE() << "a save needing 64 KiB succeeded with " << room << " bytes free";
      } catch (const IoError& e) {
        expect_no_space_error(e, "step-2.ckpt");
      }
    }
    EXPECT_EQ(dir.names(), std::vector<std::string>{"step-1.ckpt"}) << room << " bytes free";
    EXPECT_TRUE(committed.is_in(dir.file("step-1.ckpt")));
  }
  next.save(dir.file("step-2.ckpt"));  // room freed: no fault layer
  EXPECT_TRUE(next.is_in(dir.file("step-2.ckpt")));
}

// Some file systems (NFS, thin provisioning) report the full disk only at fsync.
TEST(DiskFull, EnospcAtFsyncFailsCleanly) {
  TempDir dir;
  const BigCheckpoint committed(4096, 1), next(8192, 2);
  committed.save(dir.file("model.ckpt"));
  FaultFileSystem fs;
  fs.fail_at(FsOp::fsync, 1, ENOSPC);
  {
    ScopedFileSystem scoped(fs);
    try {
      next.save(dir.file("model.ckpt"));
      ADD_FAILURE() << "the save ignored ENOSPC from fsync";
    } catch (const IoError& e) {
      expect_no_space_error(e, "model.ckpt");
    }
  }
  EXPECT_EQ(dir.names(), std::vector<std::string>{"model.ckpt"});
  EXPECT_TRUE(committed.is_in(dir.file("model.ckpt")));
}

// The state a manager saves in the async test: one tensor of 64 KiB.
struct AsyncWeights {
  std::vector<float> values = std::vector<float>(16 * 1024, 1.0f);
  template <class Archive>
  void describe(Archive& ar) {
    ar("weights", values);
  }
};

// An async save runs out of room on the background thread: the training loop
// gets the IoError a synchronous save throws, from wait() and from the next
// maybe_save, naming the checkpoint and the step; nothing is left behind.
TEST(DiskFull, AsyncSaveReportsTheFullDiskAsItsOwnError) {
  TempDir dir;
  ManagerOptions options;
  options.async = true;
  options.save_policy.every_steps = 1;
  CheckpointManager manager(dir.path(), options);
  const AsyncWeights state;
  const auto expect_failed_step = [&](const std::function<void()>& call, std::uint64_t step) {
    const std::string name = "ckpt-0000000" + std::to_string(step) + ".safetensors";
    try {
      call();
      ADD_FAILURE() << "the failed background save of step " << step << " went unreported";
    } catch (const IoError& e) {
      expect_no_space_error(e, name);
      EXPECT_EQ(e.file(), dir.file(name));
      EXPECT_NE(e.message().find("background save of step " + std::to_string(step)), std::string::npos) << e.what();
    }
  };
  {
    FaultFileSystem fs;
    fs.limit_space(40000);
    ScopedFileSystem scoped(fs);
    ASSERT_TRUE(manager.maybe_save(1, state));  // only stages the copy
    expect_failed_step([&] { manager.wait(); }, 1);
    ASSERT_TRUE(manager.maybe_save(2, state));
    expect_failed_step([&] { manager.maybe_save(3, state); }, 2);
  }
  EXPECT_EQ(dir.names(), std::vector<std::string>{".ckpt.lock"}) << "a failed save left a file behind";
  ASSERT_TRUE(manager.maybe_save(4, state));  // room freed: no fault layer
  manager.wait();
  ASSERT_EQ(manager.list().size(), 1u);
  EXPECT_EQ(manager.list().front().step, 4u);
}

// A real file system that runs out of room: a 1 MiB tmpfs.
class TmpfsMount {
 public:
  explicit TmpfsMount(const std::string& path) : path_(path) {
    if (::geteuid() != 0) {
      problem_ = "mounting a tmpfs needs root";
    } else if (::mount("tmpfs", path.c_str(), "tmpfs", 0, "size=1m") != 0) {
      problem_ = std::string("mount -t tmpfs failed: ") + std::strerror(errno);
    } else {
      mounted_ = true;
    }
  }
  ~TmpfsMount() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;

  bool mounted() const noexcept { return mounted_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  std::string path_;
  bool mounted_ = false;
  std::string problem_;
};

TEST(DiskFull, RealFullTmpfsFailsCleanlyAndTheNextSaveSucceeds) {
  TempDir dir;
  const TmpfsMount tmpfs(dir.path());
  if (!tmpfs.mounted()) GTEST_SKIP() << "no tmpfs to fill: " << tmpfs.problem();

  const BigCheckpoint committed(256 * 1024, 1), next(512 * 1024, 2);
  committed.save(dir.file("step-1.ckpt"));
  {
    // Leaves about 350 KiB of the 1 MiB: room for the 256 KiB one, not the 512 KiB one.
    std::ofstream filler(dir.file("filler"), std::ios::binary);
    const std::vector<char> bytes(400 * 1024, 'x');
    filler.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  try {
    next.save(dir.file("step-2.ckpt"));
    ADD_FAILURE() << "a 512 KiB save fit in a full 1 MiB tmpfs";
  } catch (const IoError& e) {
    expect_no_space_error(e, "step-2.ckpt");
  }
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"filler", "step-1.ckpt"}));
  EXPECT_TRUE(committed.is_in(dir.file("step-1.ckpt")));

  std::filesystem::remove(dir.file("filler"));
  next.save(dir.file("step-2.ckpt"));
  EXPECT_TRUE(next.is_in(dir.file("step-2.ckpt")));
  EXPECT_TRUE(committed.is_in(dir.file("step-1.ckpt")));
}

}  // namespace
}  // namespace ckpt::test

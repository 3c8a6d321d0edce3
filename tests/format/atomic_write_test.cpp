// Atomic writes: whatever step of a save fails, the final name holds either
// the previous file or the complete new one, and no temp file remains.
#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "format_test_support.hpp"

namespace {

using namespace ckpt_format_test;
using ckpt::ErrorId;

enum class Step { open, write, fsync, close, rename };
const char* step_name(Step step) {
  switch (step) {
    case Step::open: return "open";
    case Step::write: return "write";
    case Step::fsync: return "fsync";
    case Step::close: return "close";
    default: return "rename";
  }
}

// Fails the `fail_at`-th call of `step` with `error` (fail_at 0: never), and
// logs every call. A failing close still closes, as POSIX close does.
class FaultyFileSystem : public ckpt::detail::FileSystem {
 public:
  FaultyFileSystem(Step step, int fail_at, int error) : step_(step), fail_at_(fail_at), error_(error) {}

  int open(const char* path, int flags, unsigned mode) override {
    return fails(Step::open) ? -1 : FileSystem::open(path, flags, mode);
  }
  long write(int fd, const void* data, std::size_t size) override {
    return fails(Step::write) ? -1 : FileSystem::write(fd, data, size);
  }
  int fsync(int fd) override { return fails(Step::fsync) ? -1 : FileSystem::fsync(fd); }
  int close(int fd) override {
    const bool fail = fails(Step::close);
    const int result = FileSystem::close(fd);
    if (fail) errno = error_;
    return fail ? -1 : result;
  }
  int rename(const char* from, const char* to) override {
    return fails(Step::rename) ? -1 : FileSystem::rename(from, to);
  }

  // Every call in order, as (step, how many calls of that step so far).
  const std::vector<std::pair<Step, int>>& log() const { return log_; }

 private:
  bool fails(Step step) {
    const int call = ++calls_[step];
    log_.emplace_back(step, call);
    if (step != step_ || call != fail_at_) return false;
    errno = error_;
    return true;
  }

  Step step_;
  int fail_at_;
  int error_;
  std::map<Step, int> calls_;
  std::vector<std::pair<Step, int>> log_;
};

// Installs a file system for one scope.
class ScopedFileSystem {
 public:
  explicit ScopedFileSystem(ckpt::detail::FileSystem& fs) { ckpt::detail::set_file_system(&fs); }
  ~ScopedFileSystem() { ckpt::detail::set_file_system(nullptr); }
};

class FormatAtomicWrite : public ::testing::Test {
 protected:
  ckpt::SaveStats save(std::int32_t fill) {
    values_.assign(1000, fill);
    return ckpt::write_checkpoint(path_, {{"a", ckpt::TensorView(values_.data(), {500})},
                                          {"b", ckpt::TensorView(values_.data() + 500, {500})}},
                                  {{"fill", fill}});
  }

  TempDir dir_;
  std::string path_ = dir_.file("model.safetensors");
  std::vector<std::int32_t> values_;
};

TEST_F(FormatAtomicWrite, FailureAtEveryStepLeavesTheOldFileOrTheNewOneAndNoTempFile) {
  save(1);
  const std::string old_bytes = read_file(path_);
  FaultyFileSystem counter(Step::open, 0, 0);
  {
    ScopedFileSystem installed(counter);
    save(2);
  }
  const std::string new_bytes = read_file(path_);
  ASSERT_FALSE(new_bytes == old_bytes);

  bool renamed = false;
  for (const auto& [step, k] : counter.log()) {
    SCOPED_TRACE(std::string(step_name(step)) + " #" + std::to_string(k));
    save(1);
    FaultyFileSystem faulty(step, k, EIO);
    bool failed = false;
    try {
      ScopedFileSystem installed(faulty);
      save(2);
    } catch (const ckpt::IoError& error) {
      failed = true;
      EXPECT_NE(std::string(error.what()).find(dir_.path()), std::string::npos) << error.what();
    }
    renamed = renamed || step == Step::rename;
    const std::string now = read_file(path_);
    if (!renamed || step == Step::rename) {
      EXPECT_TRUE(failed) << "a failure before the rename went unnoticed";
      EXPECT_TRUE(now == old_bytes) << "the previous checkpoint was changed";
    } else {
      // After the rename the new file is complete; a failed directory fsync
      // is reported, a failed close of the directory changes nothing.
      EXPECT_TRUE(now == new_bytes) << "a partial file is visible under the final name";
      if (step != Step::close) {
        EXPECT_TRUE(failed) << "a failed directory fsync went unnoticed";
      }
    }
    EXPECT_EQ(dir_.entries(), std::vector<std::string>{"model.safetensors"});
  }
  EXPECT_GE(counter.log().size(), 9u) << "open, 3 writes, fsync, close, rename, directory open and fsync";
}

TEST_F(FormatAtomicWrite, FailedFirstSaveLeavesNothing) {
  FaultyFileSystem faulty(Step::write, 2, EIO);
  ScopedFileSystem installed(faulty);
  CKPT_EXPECT_ERROR(save(1), ckpt::IoError, ErrorId::io_write, path_, "write failed");
  EXPECT_TRUE(dir_.entries().empty());
}

TEST_F(FormatAtomicWrite, DiskFullSaysSoAndRemovesTheTempFile) {
  FaultyFileSystem faulty(Step::write, 2, ENOSPC);
  {
    ScopedFileSystem installed(faulty);
    CKPT_EXPECT_ERROR(save(1), ckpt::IoError, ErrorId::io_no_space, path_, "disk is full", "no space left");
  }
  EXPECT_TRUE(dir_.entries().empty());
  save(1);  // room again: the next save succeeds
  EXPECT_EQ(ckpt::Reader(path_).metadata()["fill"], 1);
}

TEST_F(FormatAtomicWrite, ErrorIdsNameTheFailedStep) {
  const std::vector<std::pair<Step, ErrorId>> cases = {
      {Step::open, ErrorId::io_open}, {Step::fsync, ErrorId::io_sync}, {Step::rename, ErrorId::io_rename}};
  for (const auto& [step, id] : cases) {
    FaultyFileSystem faulty(step, 1, EIO);
    ScopedFileSystem installed(faulty);
    CKPT_EXPECT_ERROR(save(1), ckpt::IoError, id, step_name(step));
  }
}

// The kernel may accept fewer bytes than asked, or be interrupted; the writer
// carries on from where it stopped.
class StutteringFileSystem : public ckpt::detail::FileSystem {
 public:
  long write(int fd, const void* data, std::size_t size) override {
    if (++calls_ % 3 == 0) {
      errno = EINTR;
      return -1;
    }
    return FileSystem::write(fd, data, size > 7 ? size / 2 : size);
  }

 private:
  int calls_ = 0;
};

TEST_F(FormatAtomicWrite, ShortAndInterruptedWritesStillProduceTheWholeFile) {
  StutteringFileSystem stuttering;
  {
    ScopedFileSystem installed(stuttering);
    save(5);
  }
  const ckpt::Reader reader(path_);
  reader.verify();
  EXPECT_EQ(reader.tensor("b").data_as<std::int32_t>()[499], 5);
}

TEST(FormatTempFiles, TempFileNamesAreRecognised) {
  EXPECT_TRUE(ckpt::detail::is_temp_file_name(".model.safetensors.tmp-12-0-99"));
  EXPECT_FALSE(ckpt::detail::is_temp_file_name("model.safetensors"));
  EXPECT_FALSE(ckpt::detail::is_temp_file_name(".model.safetensors"));
  EXPECT_FALSE(ckpt::detail::is_temp_file_name(".model.tmp-"));
  EXPECT_FALSE(ckpt::detail::is_temp_file_name("..tmp-1"));
}

TEST(FormatTempFiles, TempFileLivesInTheTargetDirectoryDuringTheSave) {
  TempDir dir;
  // Observes the file names the writer opens.
  class Recorder : public ckpt::detail::FileSystem {
   public:
    int open(const char* path, int flags, unsigned mode) override {
      opened.emplace_back(path);
      return FileSystem::open(path, flags, mode);
    }
    std::vector<std::string> opened;
  } recorder;
  const std::string path = dir.file("x.safetensors");
  {
    ScopedFileSystem installed(recorder);
    ckpt::write_checkpoint(path, {}, nullptr);
  }
  ASSERT_EQ(recorder.opened.size(), 2u);  // the temp file, then the directory to fsync it
  EXPECT_EQ(recorder.opened[0].rfind(dir.path() + "/.x.safetensors.tmp-", 0), 0u) << recorder.opened[0];
  EXPECT_TRUE(ckpt::detail::is_temp_file_name(ckpt::detail::file_name_of(recorder.opened[0])));
  EXPECT_EQ(recorder.opened[1], dir.path());
}

}  // namespace

// Atomic writes: whatever step of a save fails, the final name holds either
// the previous file or the complete new one, and no temp file remains.
#include <cerrno>
#include <map>
#include <string>
#include <vector>

#include "format_test_support.hpp"
#include "support/fault_fs.hpp"

namespace {

using namespace ckpt_format_test;
using ckpt::ErrorId;

using ckpt::test::FaultFileSystem;
using ckpt::test::FsOp;
using ckpt::test::ScopedFileSystem;

// Every call of a save in order, as (operation, how many calls of it so far).
std::vector<std::pair<FsOp, int>> numbered_calls(const FaultFileSystem& fs) {
  std::map<FsOp, int> counts;
  std::vector<std::pair<FsOp, int>> calls;
  for (const ckpt::test::FsCall& call : fs.trace()) calls.emplace_back(call.op, ++counts[call.op]);
  return calls;
}

class FormatAtomicWrite : public ::testing::Test {
 protected:
  ckpt::SaveStats save(std::int32_t fill) {
    values_.assign(1000, fill);
    return ckpt::write_checkpoint(
        path_, {{"a", ckpt::TensorView(values_.data(), {500})}, {"b", ckpt::TensorView(values_.data() + 500, {500})}},
        {{"fill", fill}});
  }

  TempDir dir_;
  std::string path_ = dir_.file("model.safetensors");
  std::vector<std::int32_t> values_;
};

TEST_F(FormatAtomicWrite, FailureAtEveryStepLeavesTheOldFileOrTheNewOneAndNoTempFile) {
  save(1);
  const std::string old_bytes = read_file(path_);
  FaultFileSystem counter;
  {
    ScopedFileSystem installed(counter);
    save(2);
  }
  const std::string new_bytes = read_file(path_);
  ASSERT_FALSE(new_bytes == old_bytes);

  bool renamed = false;
  const std::vector<std::pair<FsOp, int>> calls = numbered_calls(counter);
  for (const auto& [step, k] : calls) {
    SCOPED_TRACE(std::string(ckpt::test::fs_op_name(step)) + " #" + std::to_string(k));
    save(1);
    FaultFileSystem faulty;
    faulty.fail_at(step, k, EIO);
    bool failed = false;
    try {
      ScopedFileSystem installed(faulty);
      save(2);
    } catch (const ckpt::IoError& error) {
      failed = true;
      EXPECT_NE(std::string(error.what()).find(dir_.path()), std::string::npos) << error.what();
    }
    renamed = renamed || step == FsOp::rename;
    const std::string now = read_file(path_);
    if (!renamed || step == FsOp::rename) {
      EXPECT_TRUE(failed) << "a failure before the rename went unnoticed";
      EXPECT_TRUE(now == old_bytes) << "the previous checkpoint was changed";
    } else {
      // After the rename the new file is complete; a failed directory fsync
      // is reported, a failed close of the directory changes nothing.
      EXPECT_TRUE(now == new_bytes) << "a partial file is visible under the final name";
      if (step != FsOp::close) {
        EXPECT_TRUE(failed) << "a failed directory fsync went unnoticed";
      }
    }
    EXPECT_EQ(dir_.entries(), std::vector<std::string>{"model.safetensors"});
  }
  EXPECT_GE(calls.size(), 9u) << "open, 3 writes, fsync, close, rename, directory open and fsync";
}

TEST_F(FormatAtomicWrite, FailedFirstSaveLeavesNothing) {
  FaultFileSystem faulty;
  faulty.fail_at(FsOp::pwrite, 2, EIO);
  ScopedFileSystem installed(faulty);
  CKPT_EXPECT_ERROR(save(1), ckpt::IoError, ErrorId::io_write, path_, "write failed");
  EXPECT_TRUE(dir_.entries().empty());
}

TEST_F(FormatAtomicWrite, DiskFullSaysSoAndRemovesTheTempFile) {
  FaultFileSystem faulty;
  faulty.fail_at(FsOp::pwrite, 2, ENOSPC);
  {
    ScopedFileSystem installed(faulty);
    CKPT_EXPECT_ERROR(save(1), ckpt::IoError, ErrorId::io_no_space, path_, "disk is full", "no space left");
  }
  EXPECT_TRUE(dir_.entries().empty());
  save(1);  // room again: the next save succeeds
  EXPECT_EQ(ckpt::Reader(path_).metadata()["fill"], 1);
}

TEST_F(FormatAtomicWrite, ErrorIdsNameTheFailedStep) {
  const std::vector<std::pair<FsOp, ErrorId>> cases = {
      {FsOp::open, ErrorId::io_open}, {FsOp::fsync, ErrorId::io_sync}, {FsOp::rename, ErrorId::io_rename}};
  for (const auto& [step, id] : cases) {
    FaultFileSystem faulty;
    faulty.fail_at(step, 1, EIO);
    ScopedFileSystem installed(faulty);
    CKPT_EXPECT_ERROR(save(1), ckpt::IoError, id, ckpt::test::fs_op_name(step));
  }
}

// The kernel may accept fewer bytes than asked, or be interrupted; the writer
// carries on from where it stopped.
TEST_F(FormatAtomicWrite, ShortAndInterruptedWritesStillProduceTheWholeFile) {
  FaultFileSystem stuttering;
  stuttering.make_writes_short(7);
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
  FaultFileSystem recorder;  // observes the file names the writer opens
  const std::string path = dir.file("x.safetensors");
  {
    ScopedFileSystem installed(recorder);
    ckpt::write_checkpoint(path, {}, nullptr);
  }
  std::vector<std::string> opened;
  for (const ckpt::test::FsCall& call : recorder.trace()) {
    if (call.op == FsOp::open) opened.push_back(call.path);
  }
  ASSERT_EQ(opened.size(), 2u);  // the temp file, then the directory to fsync it
  EXPECT_EQ(opened[0].rfind(dir.path() + "/.x.safetensors.tmp-", 0), 0u) << opened[0];
  EXPECT_TRUE(ckpt::detail::is_temp_file_name(ckpt::detail::file_name_of(opened[0])));
  EXPECT_EQ(opened[1], dir.path());
}

}  // namespace

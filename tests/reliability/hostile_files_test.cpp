// The systematic sweep of hostile files (the format's unit tests check single
// cases): each must be refused with the right error, naming the file, while
// allocating no more than a small multiple of the file's own size, whatever
// sizes the file declares.

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "allocation_counter.hpp"
#include "hostile_files.hpp"
#include "report.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

// Memory a refusal may use: the parsed header costs a few times the text
// (nlohmann values are 16 bytes, containers more), never what the file declares.
std::uint64_t allocation_bound(std::uint64_t file_size) { return (std::uint64_t(4) << 20) + 64 * file_size; }

bool class_matches_id(const Error& error) {
  switch (static_cast<int>(error.id()) / 100) {
    case 1: return dynamic_cast<const IoError*>(&error) != nullptr;
    case 2: return dynamic_cast<const FormatError*>(&error) != nullptr;
    case 3: return dynamic_cast<const IntegrityError*>(&error) != nullptr;
    case 4: return dynamic_cast<const CodecError*>(&error) != nullptr;
    default: return false;
  }
}

// Opens, verifies and reads every tensor: a reader may refuse at any of these steps.
void read_everything(const std::string& path) {
  Reader reader(path);
  reader.verify();
  for (const TensorInfo& info : reader.tensors()) reader.tensor(info.name);
}

void expect_refused(const HostileFile& hostile, const std::string& path, double& slowest_seconds) {
  write_file_bytes(path, hostile.bytes);
  AllocationScope allocations;
  const auto start = std::chrono::steady_clock::now();
  try {
    read_everything(path);
    ADD_FAILURE() << hostile.what << ": accepted";
  } catch (const Error& e) {
    EXPECT_EQ(hostile.expected.count(e.id()), 1u) << hostile.what << ": " << e.what();
    EXPECT_TRUE(class_matches_id(e)) << hostile.what << ": " << e.what();
    EXPECT_EQ(e.file(), path) << hostile.what;
  } catch (const std::exception& e) {
    ADD_FAILURE() << hostile.what << ": refused with a non-ckpt exception: " << e.what();
  }
  slowest_seconds =
      std::max(slowest_seconds, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  const AllocationStats stats = allocations.stats();
  const std::uint64_t bound = allocation_bound(hostile.bytes.size());
  EXPECT_LE(stats.largest_bytes, bound) << hostile.what << ": one allocation of " << stats.largest_bytes << " bytes";
  EXPECT_LE(stats.peak_live_bytes, bound) << hostile.what << ": " << stats.peak_live_bytes << " bytes live";
}

void sweep(const std::string& kind, const std::vector<HostileFile>& files, const TempDir& dir) {
  double slowest = 0;
  for (const HostileFile& hostile : files) expect_refused(hostile, dir.file("hostile.safetensors"), slowest);
  report_count("hostile files (" + kind + ")", files.size());
  std::cout << "[reliability] slowest refusal (" << kind << "): " << slowest * 1e3 << " ms" << std::endl;
}

TEST(HostileFiles, ForeignSafetensorsFilesAreRefusedInBoundedMemory) {
  TempDir dir;
  const std::vector<HostileFile> files = hostile_safetensors_files();
  sweep("safetensors", files, dir);
  EXPECT_EQ(files.size(), 40u) << "the README's Reliability section states 49 hostile files: 40 + 9";
}

TEST(HostileFiles, ResignedCkptFilesThatLieAreRefusedInBoundedMemory) {
  TempDir dir;
  const std::vector<HostileFile> files = hostile_ckpt_files(dir.file("scratch.ckpt"));
  sweep("ckpt, header re-signed", files, dir);
  EXPECT_EQ(files.size(), 9u) << "the README's Reliability section states 49 hostile files: 40 + 9";
}

// The names a hostile file must not get through are the names a writer must
// not produce: a later export to a directory or a zip would turn them into paths.
TEST(HostileFiles, WriterRefusesTheNamesReadersRefuse) {
  TempDir dir;
  const std::vector<std::string> names = {
      "",   std::string("a\0b", 3), "__metadata__", "w\xff",    std::string(1025, 'n'),
      "..", "../../etc/passwd",     "model/../w",   "/model/w", "model/w/",
  };
  const std::uint8_t byte = 0;
  for (const std::string& name : names) {
    try {
      write_checkpoint(dir.file("names.ckpt"), {{name, TensorView(&byte, {1})}}, nlohmann::json::object());
      ADD_FAILURE() << "the writer accepted the name '" << name << "'";
    } catch (const ArgumentError& e) {
      EXPECT_EQ(e.id(), ErrorId::argument_name) << e.what();
      EXPECT_NE(std::string(e.what()).find("names.ckpt"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(dir.names(), std::vector<std::string>{}) << "a refused save left a file";
  report_count("hostile names (writer)", names.size());
  EXPECT_EQ(names.size(), 10u) << "the README's Reliability section states 10 names";
}

}  // namespace
}  // namespace ckpt::test

// Verified reads of format v2 files from several threads at once: the block
// cache is shared (each block verified once, whichever thread gets there
// first) and every thread still gets exact bytes; a damaged block is reported
// to every thread that reads it. Run under ThreadSanitizer (label threads).

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "format_test_support.hpp"

namespace ckpt_format_test {
namespace {

// 64 Ki F32 elements in blocks (or chunks) of 4 KiB: 64 blocks.
struct BlockFile {
  TempDir temp;
  std::string path = temp.file("threads.ckpt");
  std::vector<std::byte> whole = pattern_bytes(ckpt::DType::F32, 65536);

  explicit BlockFile(const std::string& codec) {
    ckpt::SaveOptions options;
    options.codecs = ckpt::CodecPolicy(codec);
    options.chunk_bytes = 4096;
    ckpt::write_checkpoint(path, {{"t", ckpt::TensorView(ckpt::DType::F32, {65536}, whole.data())}}, {}, options);
  }
};

class BlockThreads : public ::testing::TestWithParam<std::string> {};

TEST_P(BlockThreads, ConcurrentRangeReadsShareTheVerifiedBlocks) {
  const BlockFile file(GetParam());
  const ckpt::Reader reader(file.path, ckpt::ReadOptions{true, 2});
  std::vector<std::thread> threads;
  std::vector<int> mismatches(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t begin = static_cast<std::uint64_t>(t) * 1000; begin + 10000 <= file.whole.size();
           begin += 7001) {
        std::vector<std::byte> out(10000);
        reader.read_range("t", begin, begin + 10000, out.data());
        mismatches[static_cast<std::size_t>(t)] += std::memcmp(out.data(), file.whole.data() + begin, 10000) != 0;
      }
      std::vector<std::byte> all(file.whole.size());
      reader.read_into("t", all.data(), all.size());
      mismatches[static_cast<std::size_t>(t)] += all != file.whole;
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
  EXPECT_NO_THROW(reader.verify());
}

TEST_P(BlockThreads, EveryThreadReadingADamagedBlockIsTold) {
  const BlockFile file(GetParam());
  std::string bytes = read_file(file.path);
  const ckpt::TensorInfo info = *ckpt::Reader(file.path).find("t");
  bytes[info.file_offset + info.stored_bytes - 2] ^= 0x08;  // the last block
  write_file(file.path, bytes);
  const ckpt::Reader reader(file.path, ckpt::ReadOptions{true, 2});
  std::vector<int> told(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::byte> all(file.whole.size());
      try {
        reader.read_into("t", all.data(), all.size());
      } catch (const ckpt::IntegrityError& error) {
        told[static_cast<std::size_t>(t)] = std::string(error.what()).find("block 63 of 64") != std::string::npos;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(told, std::vector<int>(4, 1));
}

INSTANTIATE_TEST_SUITE_P(Codecs, BlockThreads, ::testing::Values("raw", "zstd"));

struct ManyTensors {
  std::vector<std::vector<float>> tensors = std::vector<std::vector<float>>(64, std::vector<float>(3000));
  template <class Archive>
  void describe(Archive& ar) {
    for (std::size_t i = 0; i < tensors.size(); ++i) ar("t" + std::to_string(i), tensors[i]);
  }
};

TEST(ParallelLoad, CheckpointLoadFillsEveryTensorFromSeveralThreads) {
  TempDir temp;
  const std::string path = temp.file("state.ckpt");
  ManyTensors saved;
  for (std::size_t i = 0; i < saved.tensors.size(); ++i) {
    for (std::size_t k = 0; k < saved.tensors[i].size(); ++k) saved.tensors[i][k] = static_cast<float>(i * 10000 + k);
  }
  ckpt::SaveOptions options;
  options.chunk_bytes = 1024;
  options.threads = 4;
  const ckpt::Checkpoint<ManyTensors> checkpoint(options);
  checkpoint.save(path, saved);
  ManyTensors loaded;
  checkpoint.load(path, loaded);
  EXPECT_EQ(loaded.tensors, saved.tensors);
}

}  // namespace
}  // namespace ckpt_format_test

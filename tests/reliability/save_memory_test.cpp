// A save's memory stays bounded whatever the state's size: beyond its header,
// a compressed save holds at most 2 x threads x chunk_bytes (in practice
// threads + 1 encoded chunks), and a raw save copies nothing. Measured with
// the allocation counter (every operator new of the process while the save
// runs, worker threads included), on states many times that bound.

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "allocation_counter.hpp"
#include "ckpt/writer.hpp"
#include "large_state.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

constexpr std::size_t chunk = std::size_t(1) << 20;
constexpr unsigned threads = 2;

struct SavePeak {
  AllocationStats allocations;
  std::uint64_t header_bytes = 0;
};

SavePeak measure_save(const LargeState& state, const std::string& codec, const std::string& path) {
  SaveOptions options;
  options.codecs = CodecPolicy(codec);
  options.chunk_bytes = chunk;
  options.threads = threads;
  options.durable = false;  // memory is the question, not the disk
  // Each thread keeps its codec scratch (detail/codec/scratch.hpp) from chunk
  // to chunk and from save to save, loads included; a first save warms it,
  // so that what is measured is what every save costs.
  write_checkpoint(path, state.views, {}, options);
  SavePeak memory;
  {
    AllocationScope scope;
    write_checkpoint(path, state.views, {}, options);
    memory.allocations = scope.stats();
  }
  const std::uint64_t file_size = std::filesystem::file_size(path);
  std::uint64_t data_bytes = 0;
  if (codec == "raw") {
    for (const NamedTensor& tensor : state.views) data_bytes += tensor.view.nbytes();
    memory.header_bytes = file_size - data_bytes;
  }
  return memory;
}

TEST(SaveMemory, CompressedSavePeakIsBoundedAndFlatAsTheStateGrows) {
  TempDir dir;
  // 16 MiB and 96 MiB states: 4 and 24 times the bound of 2 x 2 x 1 MiB.
  const LargeState small(8, 2 * chunk), large(48, 2 * chunk);
  const SavePeak at_small = measure_save(small, "shuffle+zstd", dir.file("small.safetensors"));
  const SavePeak at_large = measure_save(large, "shuffle+zstd", dir.file("large.safetensors"));
  // The header of 48 tensors is a few KiB; 64 KiB covers it and the save's
  // bookkeeping (records, the plan, the header text built twice).
  const std::uint64_t bound = 2 * threads * chunk + 64 * 1024;
  EXPECT_LE(at_small.allocations.peak_live_bytes, bound);
  EXPECT_LE(at_large.allocations.peak_live_bytes, bound);
  // Flat: six times the state costs no more than the bookkeeping of the
  // extra tensors (a chunk's worth would mean the state leaks into memory).
  EXPECT_LT(at_large.allocations.peak_live_bytes, at_small.allocations.peak_live_bytes + chunk / 4)
      << "16 MiB state: " << at_small.allocations.peak_live_bytes
      << " bytes, 96 MiB state: " << at_large.allocations.peak_live_bytes;
  // No allocation near the state's or a tensor's size: only chunks.
  EXPECT_LE(at_large.allocations.largest_bytes, chunk + chunk / 64);
}

TEST(SaveMemory, RawSaveCopiesNothing) {
  TempDir dir;
  const LargeState state(12, 8 * chunk);  // 96 MiB in tensors of 8 MiB, written from the caller's memory
  const SavePeak memory = measure_save(state, "raw", dir.file("raw.safetensors"));
  EXPECT_LE(memory.allocations.peak_live_bytes, 3 * memory.header_bytes + 64 * 1024)
      << "header: " << memory.header_bytes << " bytes";
}

TEST(SaveMemory, SmallTensorsAreGatheredInBoundedMemory) {
  TempDir dir;
  const LargeState state(20000, 1024);  // 20 MiB in 20,000 tensors: gathered into chunks
  const SavePeak memory = measure_save(state, "raw", dir.file("gathered.safetensors"));
  // Gathering holds threads + 1 chunks; the header of 20,000 tensors is
  // built twice (reserved and final) plus the records.
  EXPECT_LE(memory.allocations.peak_live_bytes, 2 * threads * chunk + 4 * memory.header_bytes)
      << "header: " << memory.header_bytes << " bytes";
}

}  // namespace
}  // namespace ckpt::test

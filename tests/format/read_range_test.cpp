// Reader::read_range and read_ranges: any byte ranges of a tensor's decoded
// bytes, from raw and encoded tensors, checked against the same bytes read
// whole.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "format_test_support.hpp"

namespace ckpt_format_test {
namespace {

// A file with tensor "t" of `count` F32 pattern elements stored with `codec`
// in chunks of `chunk_bytes`; returns the tensor's bytes.
std::vector<std::byte> write_pattern(const std::string& path, const std::string& codec, std::uint64_t count,
                                     std::size_t chunk_bytes) {
  std::vector<std::byte> bytes = pattern_bytes(ckpt::DType::F32, count);
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(codec);
  options.chunk_bytes = chunk_bytes;
  ckpt::write_checkpoint(path, {{"t", ckpt::TensorView(ckpt::DType::F32, {count}, bytes.data())}}, {}, options);
  return bytes;
}

void expect_ranges_read_exactly(const std::string& codec) {
  TempDir temp;
  const std::string path = temp.file("r.safetensors");
  // 1000 floats in chunks of 100 bytes (25 floats): ranges cut chunks
  // anywhere, span several, or fall inside one.
  const std::vector<std::byte> whole = write_pattern(path, codec, 1000, 100);
  const ckpt::Reader reader(path);
  const std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges = {
      {0, 4000}, {0, 1}, {3999, 4000}, {99, 101}, {100, 200}, {37, 3333}, {1234, 1234}, {400, 1600}};
  for (const auto& [begin, end] : ranges) {
    SCOPED_TRACE(codec + " [" + std::to_string(begin) + ", " + std::to_string(end) + ")");
    std::vector<std::byte> out(end - begin + 1, std::byte{0xEE});
    reader.read_range("t", begin, end, out.data());
    EXPECT_EQ(std::memcmp(out.data(), whole.data() + begin, end - begin), 0);
    EXPECT_EQ(out.back(), std::byte{0xEE}) << "wrote past the range";
  }
}

TEST(ReadRange, RawTensorsCopyTheRange) { expect_ranges_read_exactly("raw"); }
TEST(ReadRange, EncodedTensorsDecodeTheChunksCoveringTheRange) { expect_ranges_read_exactly("zstd"); }
TEST(ReadRange, ShuffledTensorsToo) { expect_ranges_read_exactly("shuffle+zstd"); }

TEST(ReadRange, ARangeBeyondTheTensorIsAnArgumentError) {
  TempDir temp;
  write_pattern(temp.file("r.safetensors"), "raw", 10, 1024);
  const ckpt::Reader reader(temp.file("r.safetensors"));
  std::vector<std::byte> out(64);
  try {
    reader.read_range("t", 8, 41, out.data());
    FAIL();
  } catch (const ckpt::ArgumentError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::argument_invalid);
    EXPECT_EQ(error.tensor(), "t");
    EXPECT_NE(std::string(error.what()).find("expected a byte range within the tensor's 40 bytes, found [8, 41)"),
              std::string::npos)
        << error.what();
  }
  EXPECT_THROW(reader.read_range("t", 9, 8, out.data()), ckpt::ArgumentError);
  EXPECT_THROW(reader.read_range("missing", 0, 1, out.data()), ckpt::MismatchError);
}

TEST(ReadRange, DamagedStoredBytesFailTheChecksumOfTheBlocksTheRangeTouches) {
  for (const std::string codec : {"raw", "zstd"}) {
    SCOPED_TRACE(codec);
    TempDir temp;
    const std::string path = temp.file("r.safetensors");
    write_pattern(path, codec, 1000, 100);
    std::string bytes = read_file(path);
    bytes[bytes.size() - 3] = static_cast<char>(bytes[bytes.size() - 3] ^ 0x40);  // the last chunk's bytes
    write_file(path, bytes);
    const ckpt::Reader reader(path);
    std::vector<std::byte> out(8);
    EXPECT_NO_THROW(reader.read_range("t", 0, 8, out.data()));  // far from the damage: its blocks are intact
    try {
      reader.read_range("t", 3990, 3998, out.data());
      FAIL() << "expected IntegrityError";
    } catch (const ckpt::IntegrityError& error) {
      EXPECT_EQ(error.id(), ckpt::ErrorId::integrity_tensor_checksum);
      EXPECT_NE(std::string(error.what()).find("block 39 of 40"), std::string::npos) << error.what();
    }
  }
}

// Ranges of "t" (1000 floats, chunks and blocks of 100 bytes) that cut
// blocks anywhere, span several, fall inside one, or are empty; each lands
// 3 bytes after the previous one's place in the output.
std::vector<ckpt::ByteRangeCopy> scattered_ranges() {
  std::vector<ckpt::ByteRangeCopy> ranges;
  std::uint64_t target = 3;
  for (const auto& [begin, end] : std::vector<std::pair<std::uint64_t, std::uint64_t>>{
           {0, 3}, {10, 250}, {399, 401}, {401, 460}, {1000, 1000}, {2000, 3990}, {3999, 4000}}) {
    ranges.push_back({begin, end, target});
    target += end - begin + 3;
  }
  return ranges;
}

void expect_scattered_ranges_read_exactly(const std::string& codec) {
  TempDir temp;
  const std::string path = temp.file("r.safetensors");
  const std::vector<std::byte> whole = write_pattern(path, codec, 1000, 100);
  const ckpt::Reader reader(path);
  const std::vector<ckpt::ByteRangeCopy> ranges = scattered_ranges();
  std::vector<std::byte> out(ranges.back().target + 1 + 3, std::byte{0xEE});
  reader.read_ranges("t", ranges, out.data());
  std::uint64_t untouched = 0;
  for (const ckpt::ByteRangeCopy& range : ranges) {
    SCOPED_TRACE(codec + " [" + std::to_string(range.begin) + ", " + std::to_string(range.end) + ")");
    EXPECT_EQ(std::memcmp(out.data() + range.target, whole.data() + range.begin, range.end - range.begin), 0);
    for (std::uint64_t i = untouched; i < range.target; ++i) ASSERT_EQ(out[i], std::byte{0xEE}) << "wrote byte " << i;
    untouched = range.target + (range.end - range.begin);
  }
  for (std::uint64_t i = untouched; i < out.size(); ++i) ASSERT_EQ(out[i], std::byte{0xEE}) << "wrote byte " << i;
}

TEST(ReadRanges, RawTensorsCopyEveryRangeToItsPlace) { expect_scattered_ranges_read_exactly("raw"); }
TEST(ReadRanges, EncodedTensorsToo) { expect_scattered_ranges_read_exactly("shuffle+zstd"); }

TEST(ReadRanges, RangesOutOfOrderOverlappingOrBeyondTheTensorAreAnArgumentError) {
  TempDir temp;
  write_pattern(temp.file("r.safetensors"), "raw", 10, 1024);
  const ckpt::Reader reader(temp.file("r.safetensors"));
  std::vector<std::byte> out(64);
  const auto refused = [&](std::vector<ckpt::ByteRangeCopy> ranges, const std::string& found) {
    ckpt::test::expect_error<ckpt::ArgumentError>(
        [&] { reader.read_ranges("t", ranges, out.data()); }, ckpt::ErrorId::argument_invalid,
        {"r.safetensors", "tensor 't'", "expected sorted, disjoint byte ranges within the tensor's 40 bytes", found});
  };
  refused({{8, 12, 0}, {0, 4, 4}}, "found range 1 [0, 4) after [8, 12)");
  refused({{0, 8, 0}, {4, 12, 8}}, "found range 1 [4, 12) after [0, 8)");
  refused({{0, 4, 0}, {36, 41, 4}}, "found range 1 [36, 41) after [0, 4)");
  refused({{5, 4, 0}}, "found range 0 [5, 4) after [0, 0)");
}

TEST(ReadRanges, OnlyTheBlocksTheRangesTouchAreCheckedAndADamagedOneFailsNamingIt) {
  TempDir temp;
  const std::string path = temp.file("r.safetensors");
  const std::vector<std::byte> whole = write_pattern(path, "raw", 1000, 100);
  std::string bytes = read_file(path);
  const std::size_t damaged = bytes.size() - 4000 + 2050;  // stored byte 2050: block 20 of 40
  bytes[damaged] = static_cast<char>(bytes[damaged] ^ 0x40);
  write_file(path, bytes);
  const ckpt::Reader reader(path);
  std::vector<std::byte> out(4000);
  // Ranges on both sides of the damaged block, none in it: read and intact.
  reader.read_ranges("t", {{0, 8, 0}, {1990, 2000, 8}, {2100, 2110, 18}, {3900, 4000, 28}}, out.data());
  EXPECT_EQ(std::memcmp(out.data() + 8, whole.data() + 1990, 10), 0);
  EXPECT_EQ(std::memcmp(out.data() + 18, whole.data() + 2100, 10), 0);
  // A small range inside the damaged block, far from the damaged byte.
  ckpt::test::expect_error<ckpt::IntegrityError>(
      [&] {
        reader.read_ranges("t", {{0, 8, 0}, {2090, 2094, 8}}, out.data());
      },
      ckpt::ErrorId::integrity_tensor_checksum,
      {"r.safetensors", "tensor 't'", "block 20 of 40 (stored bytes [2000, 2100))", "expected xxh3"});
}

}  // namespace
}  // namespace ckpt_format_test

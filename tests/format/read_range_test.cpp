// Reader::read_range: any byte range of a tensor's decoded bytes, from raw
// and encoded tensors, checked against the same bytes read whole.

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

}  // namespace
}  // namespace ckpt_format_test

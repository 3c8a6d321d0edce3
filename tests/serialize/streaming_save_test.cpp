// The streaming save: every codec round-trips at sizes around chunk and block
// boundaries, with many small tensors and empty ones, on any number of
// threads; the file carries format version 2's block checksums (checked here
// against the file's bytes, independently of the reader); small tensors cost
// few write calls; and the header's reserved space always fits the header.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"
#include "support/fault_fs.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::DType;
using ckpt::NamedTensor;
using ckpt::TensorView;
using ckpt::test::TempDir;

// Tensors that own their bytes: values that compress a little (so encoded
// chunks differ in size) and differ from tensor to tensor.
struct OwnedTensors {
  std::vector<std::string> names;
  std::vector<DType> dtypes;
  std::vector<std::vector<std::byte>> bytes;

  void add(const std::string& name, DType dtype, std::size_t byte_size, std::uint32_t seed) {
    std::mt19937 random(seed);
    std::vector<std::byte> data(byte_size);
    for (std::size_t i = 0; i < byte_size; ++i) data[i] = static_cast<std::byte>(random() % 16 + (i % 7) * 16);
    names.push_back(name);
    dtypes.push_back(dtype);
    bytes.push_back(std::move(data));
  }

  std::vector<NamedTensor> views() const {
    std::vector<NamedTensor> tensors;
    for (std::size_t i = 0; i < names.size(); ++i) {
      const std::uint64_t elements = bytes[i].size() / ckpt::dtype_size(dtypes[i]);
      tensors.push_back(NamedTensor{names[i], TensorView(dtypes[i], {elements}, bytes[i].data())});
    }
    return tensors;
  }
};

std::string hex(const std::string& bytes, std::uint64_t begin, std::uint64_t size) {
  return ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(bytes.data() + begin, size));
}

// Checks format version 2's block checksums of every tensor against the
// stored bytes in the file (docs: notes on format version 2), and that every
// tensor reads back bit-exact and verifies.
void expect_round_trip_with_blocks(const std::string& path, const OwnedTensors& saved, std::size_t chunk_bytes) {
  const ckpt::Reader reader(path);
  EXPECT_EQ(reader.format_version(), 2);
  reader.verify();
  const std::string bytes = ckpt::test::read_file(path);
  const std::uint64_t data_start = 8 + ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data()));
  const nlohmann::json infos = nlohmann::json::parse(reader.raw_metadata().at("ckpt.tensors"));
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, data_start - 8));
  for (std::size_t i = 0; i < saved.names.size(); ++i) {
    const std::string& name = saved.names[i];
    SCOPED_TRACE(name);
    const ckpt::Tensor loaded = reader.tensor(name);
    ASSERT_EQ(loaded.nbytes(), saved.bytes[i].size());
    EXPECT_TRUE(saved.bytes[i].empty() || std::memcmp(loaded.data(), saved.bytes[i].data(), loaded.nbytes()) == 0);

    const nlohmann::json& info = infos.at(name);
    const std::uint64_t begin = data_start + header.at(name).at("data_offsets")[0].get<std::uint64_t>();
    const std::uint64_t end = data_start + header.at(name).at("data_offsets")[1].get<std::uint64_t>();
    EXPECT_EQ(info.at("xxh3"), hex(bytes, begin, end - begin));
    const auto& blocks = info.at("blocks");
    if (info.at("codec") == "raw") {
      ASSERT_EQ(info.at("block_bytes"), chunk_bytes);
      const std::uint64_t count = (end - begin + chunk_bytes - 1) / chunk_bytes;
      ASSERT_EQ(blocks.size(), count);
      for (std::uint64_t b = 0; b < count; ++b) {
        const std::uint64_t from = begin + b * chunk_bytes;
        EXPECT_EQ(blocks[b], hex(bytes, from, std::min<std::uint64_t>(chunk_bytes, end - from))) << "block " << b;
      }
    } else {
      EXPECT_FALSE(info.contains("block_bytes"));
      const auto& chunks = info.at("chunks");
      ASSERT_EQ(blocks.size(), chunks.size());
      std::uint64_t from = begin;
      for (std::size_t c = 0; c < chunks.size(); ++c) {
        EXPECT_EQ(blocks[c], hex(bytes, from, chunks[c].get<std::uint64_t>())) << "chunk " << c;
        from += chunks[c].get<std::uint64_t>();
      }
      EXPECT_EQ(from, end);
    }
  }
}

struct CodecCase {
  const char* codec;
  unsigned threads;
};

class StreamingSave : public ::testing::TestWithParam<CodecCase> {};

// Sizes in bytes around a chunk (and block) of 1024 bytes: empty, smaller,
// one element short and over, exact multiples, and many chunks; of 1-, 2-,
// 4- and 8-byte elements, so raw 1-byte tensors sit among encoded ones.
TEST_P(StreamingSave, RoundTripsAtChunkAndBlockBoundaries) {
  const std::size_t chunk = 1024;
  OwnedTensors tensors;
  std::uint32_t seed = 1;
  for (const DType dtype : {DType::U8, DType::F16, DType::F32, DType::F64}) {
    const std::size_t width = ckpt::dtype_size(dtype);
    for (const std::size_t size : {std::size_t(0), width, chunk - width, chunk, chunk + width, 2 * chunk,
                                   3 * chunk - width, 7 * chunk + 3 * width, 40 * chunk}) {
      tensors.add(std::string(ckpt::dtype_name(dtype)) + "/" + std::to_string(size), dtype, size, seed++);
    }
  }
  TempDir dir;
  const std::string path = dir.file("boundaries.safetensors");
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(GetParam().codec);
  options.chunk_bytes = chunk;
  options.threads = GetParam().threads;
  const ckpt::SaveStats stats = ckpt::write_checkpoint(path, tensors.views(), {{"step", 3}}, options);
  EXPECT_EQ(stats.file_bytes, ckpt::test::read_file(path).size());
  expect_round_trip_with_blocks(path, tensors, chunk);
  EXPECT_EQ(ckpt::Reader(path).metadata().at("step"), 3);
}

TEST_P(StreamingSave, ManySmallAndEmptyTensorsRoundTrip) {
  OwnedTensors tensors;
  std::mt19937 random(5);
  for (int i = 0; i < 3000; ++i) {
    const std::size_t elements = random() % 5 == 0 ? 0 : random() % 300;
    tensors.add("layer" + std::to_string(i) + "/w", DType::F32, elements * 4, static_cast<std::uint32_t>(i));
  }
  TempDir dir;
  const std::string path = dir.file("small.safetensors");
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(GetParam().codec);
  options.chunk_bytes = 64 * 1024;
  options.threads = GetParam().threads;
  ckpt::write_checkpoint(path, tensors.views(), {}, options);
  expect_round_trip_with_blocks(path, tensors, options.chunk_bytes);
}

INSTANTIATE_TEST_SUITE_P(Codecs, StreamingSave,
                         ::testing::Values(CodecCase{"raw", 0}, CodecCase{"raw", 1}, CodecCase{"zstd", 2},
                                           CodecCase{"shuffle+zstd", 0}, CodecCase{"shuffle+zstd", 1},
                                           CodecCase{"shuffle+zstd", 3}),
                         [](const ::testing::TestParamInfo<CodecCase>& info) {
                           std::string name =
                               std::string(info.param.codec) + "_threads" + std::to_string(info.param.threads);
                           std::replace(name.begin(), name.end(), '+', '_');
                           return name;
                         });

// Small tensors are gathered into writes of up to chunk_bytes: 20,000 tensors
// of 1 KiB (20 MiB) in chunks of 4 MiB take a handful of write calls, not one
// per tensor.
TEST(StreamingSaveCalls, SmallTensorsAreCoalescedIntoFewWrites) {
  OwnedTensors tensors;
  for (int i = 0; i < 20000; ++i) tensors.add("t" + std::to_string(i), DType::F32, 1024, static_cast<std::uint32_t>(i));
  TempDir dir;
  const std::string path = dir.file("many.safetensors");
  ckpt::test::FaultFileSystem fs;
  {
    ckpt::test::ScopedFileSystem scoped(fs);
    ckpt::write_checkpoint(path, tensors.views(), {});
  }
  // 20 MiB of data in 4 MiB writes, plus the header written last.
  EXPECT_LE(fs.count(ckpt::test::FsOp::pwrite), 6u + 1u);
  expect_round_trip_with_blocks(path, tensors, std::size_t(4) << 20);
}

// The header is written last into space reserved before any checksum, chunk
// size or offset was known: the reservation prints every unknown number at
// its widest, so any real values fit. Fuzzed with values of every width,
// including the widest, and names and metadata that need escaping.
TEST(StreamingSaveHeader, ReservedSpaceAlwaysFitsTheFinalHeader) {
  using ckpt::detail::TensorRecord;
  std::mt19937_64 random(12);
  const auto any_width = [&] {
    const int digits = static_cast<int>(random() % 21);  // 0 to 20 digits
    if (digits == 20) return random() % 2 == 0 ? ~std::uint64_t(0) : std::uint64_t(10'000'000'000'000'000'000u);
    std::uint64_t value = random() % 10;
    for (int d = 1; d < digits; ++d) value = value * 10 + random() % 10;
    return value;
  };
  for (int round = 0; round < 300; ++round) {
    std::vector<TensorRecord> planned;
    const std::size_t count = 1 + random() % 12;
    for (std::size_t i = 0; i < count; ++i) {
      TensorRecord record;
      record.name = "t\"\\" + std::to_string(i) + "\xc3\xa9";
      record.dtype = record.stored_dtype = DType::F32;
      record.shape = record.stored_shape = {random() % 100000, random() % 3};
      record.checksummed = true;
      record.begin = any_width();
      record.end = any_width();
      if (random() % 2 == 0) {
        record.codec = "shuffle+zstd";
        record.stored_dtype = DType::U8;
        record.stored_shape = {0};
        record.chunk_bytes = 1 + random() % (std::uint64_t(1) << 30);
        record.chunk_sizes.resize(random() % 40);
        record.block_xxh3.resize(record.chunk_sizes.size());
      } else {
        record.block_bytes = 1 + random() % (std::uint64_t(1) << 30);
        record.block_xxh3.resize(random() % 40);
      }
      planned.push_back(record);
    }
    const nlohmann::json metadata = {{"round", round}, {"note", "quote \" and newline \n"}};
    const std::uint64_t reserved = ckpt::detail::reserved_header_bytes(planned, metadata);
    // The save fills in the real values, any of them at any width; offsets
    // before the first encoded tensor were final when the space was reserved.
    std::vector<TensorRecord> final_records = planned;
    bool offsets_known = true;
    for (TensorRecord& record : final_records) {
      offsets_known = offsets_known && !record.encoded();
      if (!offsets_known) {
        record.begin = any_width();
        record.end = any_width();
      }
      record.stored_xxh3 = random();
      record.raw_xxh3 = random();
      for (std::uint64_t& size : record.chunk_sizes) size = any_width();
      for (std::uint64_t& block : record.block_xxh3) block = random();
      if (record.encoded()) record.stored_shape = {any_width()};
    }
    const std::string header = ckpt::detail::build_header(final_records, metadata, reserved);
    ASSERT_EQ(header.size(), reserved) << "round " << round;
    EXPECT_EQ(reserved % ckpt::detail::data_alignment, 0u);
    // The padding is spaces after the JSON, and the header checksum covers it.
    const std::string json = header.substr(8);
    EXPECT_EQ(json.find_last_not_of(' '), json.rfind('}'));
    EXPECT_EQ(nlohmann::json::parse(json).at("__metadata__").at("ckpt.format_version"), "2");
    const std::uint64_t checksum =
        ckpt::detail::header_checksum(reinterpret_cast<const std::byte*>(header.data()), header.size());
    EXPECT_EQ(header.substr(ckpt::detail::checksum_value_offset, 16), ckpt::detail::checksum_to_hex(checksum));
  }
}

// The header's numbers are printed digit by digit and their widths counted
// apart: both must agree with std::to_string at every width, around each
// power of ten and at the largest value.
TEST(StreamingSaveHeader, NumbersPrintAndCountAsDecimalText) {
  std::vector<std::uint64_t> values = {0, ~std::uint64_t(0)};
  std::uint64_t power = 1;
  for (int digits = 1; digits < 20; ++digits) {
    power *= 10;  // the smallest number of digits + 1 digits
    values.insert(values.end(), {power - 1, power, power + 1});
  }
  for (const std::uint64_t value : values) {
    ckpt::detail::HeaderText text(0);
    ckpt::detail::HeaderSize size;
    text.put_decimal(value);
    size.put_decimal(value);
    const std::string printed = std::move(text).take();
    EXPECT_EQ(printed, std::to_string(value));
    EXPECT_EQ(size.bytes(), printed.size()) << value;
  }
}

// A raw checkpoint whose header was reserved wider than it turned out (an
// encoded tensor came first) stays a file any safetensors reader accepts: the
// padding is spaces, and every offset lands where the data is.
TEST(StreamingSaveHeader, PaddedHeaderStillReadsAsSafetensors) {
  OwnedTensors tensors;
  tensors.add("a", DType::U8, 5000, 1);  // encoded, first among the 1-byte tensors
  tensors.add("b", DType::U8, 3000, 2);  // raw, after it: its offsets were unknown
  TempDir dir;
  const std::string path = dir.file("padded.safetensors");
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy("raw").for_names("a", "zstd");
  options.chunk_bytes = 1024;
  ckpt::write_checkpoint(path, tensors.views(), {}, options);
  const std::string bytes = ckpt::test::read_file(path);
  const std::uint64_t header_size = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data()));
  const std::string json = bytes.substr(8, header_size);
  EXPECT_GT(json.size() - 1 - json.rfind('}'), 63u) << "expected padding beyond the alignment";
  expect_round_trip_with_blocks(path, tensors, options.chunk_bytes);
}

// A save orders tensors by name through integers made of the names' first 16
// bytes: the order must be that of the bytes, whatever they are, for names
// shorter and longer than 16, with NUL and high bytes, sharing long prefixes
// or equal (the earlier position first).
TEST(StreamingSaveOrder, NamesSortAsTheirBytes) {
  std::mt19937 random(5);
  const std::string alphabet("\0\x01a/b\x7f\xc3\xff", 8);
  for (int round = 0; round < 50; ++round) {
    std::vector<NamedTensor> tensors;
    for (int i = 0; i < 200; ++i) {
      std::string name = random() % 2 == 0 ? "model.layers.10.mlp" : "";
      for (std::size_t length = random() % 20; length > 0; --length) name += alphabet[random() % alphabet.size()];
      tensors.push_back(NamedTensor{name, TensorView(DType::U8, {0}, nullptr)});
    }
    std::vector<std::size_t> expected(tensors.size());
    for (std::size_t i = 0; i < expected.size(); ++i) expected[i] = i;
    std::stable_sort(expected.begin(), expected.end(),
                     [&](std::size_t a, std::size_t b) { return tensors[a].name < tensors[b].name; });
    EXPECT_EQ(ckpt::detail::positions_by_name(tensors), expected) << "round " << round;
  }
}

}  // namespace

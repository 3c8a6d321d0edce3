// The two readings of a header (header_parser.hpp): parse_compact, which
// reads headers as ckpt writes them straight into records, must take every
// such header and give what parse_general gives; on anything else it must
// step aside (nullopt) so that parse_general accepts or names the problem.

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "format_test_support.hpp"

namespace {

using ckpt::DType;
using ckpt::detail::HeaderParser;
using ckpt::detail::ParsedHeader;
using ckpt::detail::TensorRecord;
using ckpt_format_test::pattern_bytes;
using ckpt_format_test::read_file;
using ckpt_format_test::TempDir;

const std::string v1_fixture = std::string(CKPT_TEST_DATA_DIR) + "/format_v1.ckpt";

void expect_same_record(const TensorRecord& a, const TensorRecord& b) {
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.dtype, b.dtype) << a.name;
  EXPECT_EQ(a.shape, b.shape) << a.name;
  EXPECT_EQ(a.codec, b.codec) << a.name;
  EXPECT_EQ(a.stored_dtype, b.stored_dtype) << a.name;
  EXPECT_EQ(a.stored_shape, b.stored_shape) << a.name;
  EXPECT_EQ(a.begin, b.begin) << a.name;
  EXPECT_EQ(a.end, b.end) << a.name;
  EXPECT_EQ(a.checksummed, b.checksummed) << a.name;
  EXPECT_EQ(a.stored_xxh3, b.stored_xxh3) << a.name;
  EXPECT_EQ(a.raw_xxh3, b.raw_xxh3) << a.name;
  EXPECT_EQ(a.chunk_bytes, b.chunk_bytes) << a.name;
  EXPECT_EQ(a.chunk_sizes, b.chunk_sizes) << a.name;
  EXPECT_EQ(a.block_checksummed, b.block_checksummed) << a.name;
  EXPECT_EQ(a.block_bytes, b.block_bytes) << a.name;
  EXPECT_EQ(a.block_xxh3, b.block_xxh3) << a.name;
  EXPECT_EQ(a.block_starts, b.block_starts) << a.name;
}

void expect_same_header(const ParsedHeader& a, const ParsedHeader& b) {
  EXPECT_EQ(a.data_start, b.data_start);
  EXPECT_EQ(a.format_version, b.format_version);
  EXPECT_EQ(a.raw_metadata, b.raw_metadata);
  EXPECT_EQ(a.user_metadata, b.user_metadata);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) expect_same_record(a.tensors[i], b.tensors[i]);
  EXPECT_EQ(a.header_xxh3, b.header_xxh3);
  ASSERT_EQ(a.content_hashes.size(), b.content_hashes.size());
  for (const auto& [name, hash] : a.content_hashes) EXPECT_EQ(b.content_hashes.count(name), 1u) << name;
  ASSERT_EQ(a.chain.has_value(), b.chain.has_value());
  if (a.chain) {
    EXPECT_EQ(a.chain->parent.file, b.chain->parent.file);
    EXPECT_EQ(a.chain->depth, b.chain->depth);
    ASSERT_EQ(a.chain->references.size(), b.chain->references.size());
    for (std::size_t i = 0; i < a.chain->references.size(); ++i)
      EXPECT_EQ(a.chain->references[i].name, b.chain->references[i].name);
  }
}

std::optional<ParsedHeader> compact(const std::string& bytes) {
  ParsedHeader header;
  if (!HeaderParser<>("f", reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()).parse_compact(header)) {
    return std::nullopt;
  }
  return header;
}

ParsedHeader general(const std::string& bytes) {
  return HeaderParser<>("f", reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()).parse_general();
}

// A checkpoint of raw and encoded tensors of several element sizes (so the
// header lists names in several ascending runs), one of them empty.
std::string mixed_checkpoint(const TempDir& dir, const std::string& codec) {
  const std::vector<std::byte> f32 = pattern_bytes(DType::F32, 3000), f64 = pattern_bytes(DType::F64, 70),
                               u8 = pattern_bytes(DType::U8, 5000), i16 = pattern_bytes(DType::I16, 9);
  const std::vector<ckpt::NamedTensor> tensors = {
      {"layer/b", ckpt::TensorView(DType::F32, {3000}, f32.data())},
      {"layer/a", ckpt::TensorView(DType::F64, {7, 10}, f64.data())},
      {"bytes", ckpt::TensorView(DType::U8, {50, 100}, u8.data())},
      {"z", ckpt::TensorView(DType::I16, {9}, i16.data())},
      {"empty", ckpt::TensorView(DType::F32, {0, 4}, f32.data())},
  };
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(codec);
  options.chunk_bytes = 1024;  // several blocks and chunks per tensor
  const std::string path = dir.path() + "/mixed-" + std::to_string(codec.size()) + ".ckpt";
  ckpt::write_checkpoint(path, tensors, {{"step", 7}, {"note", "quote \" and backslash \\"}}, options);
  return read_file(path);
}

// An incremental child of a checkpoint with content hashes: one tensor
// changed, the rest referenced (ckpt.xxh128 and ckpt.chain, format version 3).
std::vector<std::string> incremental_pair(const TempDir& dir) {
  const std::vector<std::byte> a = pattern_bytes(DType::F32, 300), b = pattern_bytes(DType::F32, 200);
  std::vector<std::byte> changed = b;
  changed[0] = std::byte{0x5a};
  ckpt::SaveOptions options;
  options.incremental.content_hashes = true;
  const std::string parent = dir.path() + "/parent.ckpt", child = dir.path() + "/child.ckpt";
  ckpt::write_checkpoint(
      parent,
      {{"a", ckpt::TensorView(DType::F32, {300}, a.data())}, {"b", ckpt::TensorView(DType::F32, {200}, b.data())}}, {},
      options);
  options.incremental.parent = parent;
  ckpt::write_checkpoint(child,
                         {{"a", ckpt::TensorView(DType::F32, {300}, a.data())},
                          {"b", ckpt::TensorView(DType::F32, {200}, changed.data())}},
                         {}, options);
  return {read_file(parent), read_file(child)};
}

std::vector<std::string> written_files(const TempDir& dir) {
  std::vector<std::string> files = incremental_pair(dir);
  files.push_back(mixed_checkpoint(dir, "raw"));
#if CKPT_WITH_ZSTD
  files.push_back(mixed_checkpoint(dir, "shuffle+zstd"));
#endif
  return files;
}

TEST(HeaderFastPath, TakesHeadersAsCkptWritesThemAndAgreesWithTheGeneralParser) {
  TempDir dir;
  std::vector<std::string> files = written_files(dir);
  files.push_back(read_file(v1_fixture));
  for (const std::string& bytes : files) {
    const std::optional<ParsedHeader> fast = compact(bytes);
    ASSERT_TRUE(fast.has_value());
    expect_same_header(*fast, general(bytes));
  }
  // files[1] is the incremental child: its references survive the compact reading.
  const std::optional<ParsedHeader> child = compact(files[1]);
  ASSERT_TRUE(child && child->chain);
  EXPECT_EQ(child->format_version, 3);
  EXPECT_EQ(child->chain->references.size(), 1u);
}

TEST(HeaderFastPath, StepsAsideForForeignAndUnusualHeaders) {
  // Valid safetensors without ckpt's marks, with whitespace, and a name that
  // needs an escape: parse_general reads them all.
  const std::string data(8, '\0');
  for (const std::string& header : {std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"),
                                    std::string(R"({ "t" : {"dtype":"F32","shape":[2],"data_offsets":[0,8]}})"),
                                    std::string(R"({"t\"q":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})")}) {
    const std::string bytes = ckpt_format_test::safetensors_bytes(header, data);
    EXPECT_FALSE(compact(bytes).has_value()) << header;
    EXPECT_EQ(general(bytes).tensors.size(), 1u) << header;
  }
}

// Replaces the header checksum with the one of the (changed) header, so a
// change reaches the checks after it.
void reseal(std::string& bytes) {
  const std::uint64_t data_start = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data())) + 8;
  const std::uint64_t checksum =
      ckpt::detail::header_checksum(reinterpret_cast<const std::byte*>(bytes.data()), data_start);
  bytes.replace(ckpt::detail::checksum_value_offset, ckpt::detail::checksum_hex_digits,
                ckpt::detail::checksum_to_hex(checksum));
}

// Mutants of well-formed headers, resealed so that the checksum does not
// stop them: whenever parse_compact takes one, parse_general takes it too
// and reads the same; whatever parse_general refuses, parse_compact leaves.
TEST(HeaderFastPath, NeverTakesWhatTheGeneralParserRefuses) {
  TempDir dir;
  std::mt19937_64 random(12);
  const std::string replacements = "0123456789\"\\{}[],: abczF\x80";
  std::size_t taken = 0, refused = 0;
  for (const std::string& original : written_files(dir)) {
    const std::uint64_t data_start = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(original.data())) + 8;
    const std::uint64_t first = ckpt::detail::checksum_value_offset + ckpt::detail::checksum_hex_digits;
    for (int round = 0; round < 4000; ++round) {
      std::string bytes = original;
      const int changes = 1 + static_cast<int>(random() % 3);
      for (int c = 0; c < changes; ++c) {
        const std::uint64_t at = first + random() % (data_start - first);
        bytes[at] = replacements[random() % replacements.size()];
      }
      reseal(bytes);
      const std::optional<ParsedHeader> fast = compact(bytes);
      std::optional<ParsedHeader> slow;
      try {
        slow = general(bytes);
      } catch (const ckpt::Error&) {
      }
      if (!slow) {
        ++refused;
        EXPECT_FALSE(fast.has_value()) << "round " << round << ": the compact reading took a header refused";
      } else if (fast) {
        ++taken;
        expect_same_header(*fast, *slow);
      }
    }
  }
  // Both kinds occurred, or the test shows nothing.
  EXPECT_GT(taken, 0u);
  EXPECT_GT(refused, 0u);
}

}  // namespace

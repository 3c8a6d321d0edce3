// Format version 2's block checksums (docs/format.md, section 4) and format
// version 1 files: the committed v1 fixture loads bit-exactly, the parser
// refuses malformed block members, and a verified read checks exactly the
// blocks it touches, once.

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "format_test_support.hpp"
#include "v1_fixture_values.hpp"

namespace ckpt_format_test {
namespace {

using ckpt::ErrorId;

const std::string v1_fixture = std::string(CKPT_TEST_DATA_DIR) + "/format_v1.ckpt";

std::vector<std::byte> read_whole(const ckpt::Reader& reader, const std::string& name) {
  const ckpt::TensorInfo& info = *reader.find(name);
  std::vector<std::byte> out(ckpt::byte_size(info.dtype, info.shape));
  reader.read_into(name, out.data(), out.size());
  return out;
}

TEST(FormatV1Fixture, LoadsBitExactlyAndVerifies) {
  const ckpt::Reader reader(v1_fixture);
  EXPECT_EQ(reader.format_version(), 1);
  EXPECT_EQ(reader.metadata().at("step"), 7);
  const auto expected = ckpt_v1_fixture::tensors();
  ASSERT_EQ(reader.tensors().size(), expected.size());
  for (const auto& tensor : expected) {
    SCOPED_TRACE(tensor.name);
    const ckpt::TensorInfo* info = reader.find(tensor.name);
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->codec, tensor.codec);
    EXPECT_EQ(info->dtype, tensor.dtype);
    EXPECT_EQ(info->shape, tensor.shape);
    EXPECT_EQ(read_whole(reader, tensor.name), tensor.bytes);
    const ckpt::Tensor loaded = reader.tensor(tensor.name);
    ASSERT_EQ(loaded.nbytes(), tensor.bytes.size());
    if (!tensor.bytes.empty()) {  // an empty tensor's data may be null, which memcmp must not get
      EXPECT_EQ(std::memcmp(loaded.data(), tensor.bytes.data(), tensor.bytes.size()), 0);
    }
    if (tensor.bytes.size() > 8) {
      std::vector<std::byte> middle(8);
      reader.read_range(tensor.name, 4, 12, middle.data());
      EXPECT_EQ(std::memcmp(middle.data(), tensor.bytes.data() + 4, 8), 0);
    }
  }
  EXPECT_NO_THROW(reader.verify());
}

TEST(FormatV1Fixture, DamageIsFoundByTheWholeTensorChecksumAsBefore) {
  TempDir temp;
  const std::string path = temp.file("v1.ckpt");
  std::string bytes = read_file(v1_fixture);
  const ckpt::TensorInfo info = *ckpt::Reader(v1_fixture).find("raw_f32");
  bytes[info.file_offset + info.stored_bytes - 1] ^= 0x10;  // far from the range read below
  write_file(path, bytes);
  const ckpt::Reader reader(path);
  std::vector<std::byte> out(4);
  CKPT_EXPECT_ERROR(reader.read_range("raw_f32", 0, 4, out.data()), ckpt::IntegrityError,
                    ErrorId::integrity_tensor_checksum, path, "tensor 'raw_f32'", "of the 1024 stored bytes");
}

TEST(FormatV1Fixture, AV1EntryWithBlockChecksumsIsRefused) {
  TempDir temp;
  const std::string path = temp.file("v1.ckpt");
  write_file(path, read_file(v1_fixture));
  rewrite_metadata_json(path, "ckpt.tensors", [](nlohmann::ordered_json& infos) {
    infos["raw_f32"]["block_bytes"] = 1024;
    infos["raw_f32"]["blocks"] = {infos["raw_f32"]["xxh3"]};
  });
  CKPT_EXPECT_ERROR(ckpt::Reader{path}, ckpt::FormatError, ErrorId::format_metadata, path, "tensor 'raw_f32'",
                    "exactly the keys codec and xxh3 for a raw tensor (format version 1)");
}

// A v2 file: "t", 1000 F32 pattern elements stored with `codec`, in blocks
// (raw) or chunks (encoded) of 100 bytes, so 40 blocks.
class FormatV2 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = temp_.file("v2.ckpt");
    whole_ = pattern_bytes(ckpt::DType::F32, count_);
    ckpt::SaveOptions options;
    options.codecs = ckpt::CodecPolicy(GetParam());
    options.chunk_bytes = 100;
    ckpt::write_checkpoint(path_, {{"t", ckpt::TensorView(ckpt::DType::F32, {count_}, whole_.data())}}, {}, options);
    info_ = *ckpt::Reader(path_).find("t");
  }

  bool raw() const { return GetParam() == "raw"; }

  // Flips one stored byte of block `block` (its first), in place: a Reader
  // already open sees the change through its shared mapping.
  void damage_block(std::size_t block) {
    std::string bytes = read_file(path_);
    bytes[info_.file_offset + block_begin(block)] ^= 0x40;
    write_file(path_, bytes);
  }

  std::uint64_t block_begin(std::size_t block) const {
    if (raw()) return block * 100;
    const auto chunks = stored_infos()["t"]["chunks"];
    std::uint64_t begin = 0;
    for (std::size_t i = 0; i < block; ++i) begin += chunks[i].get<std::uint64_t>();
    return begin;
  }

  nlohmann::json stored_infos() const {
    const ckpt::Reader reader(path_, ckpt::ReadOptions{false, 1});
    return nlohmann::json::parse(reader.raw_metadata().at("ckpt.tensors"));
  }

  static constexpr std::uint64_t count_ = 1000;
  TempDir temp_;
  std::string path_;
  std::vector<std::byte> whole_;
  ckpt::TensorInfo info_;
};

TEST_P(FormatV2, WritesAndReadsBlockChecksums) {
  const ckpt::Reader reader(path_);
  EXPECT_EQ(reader.format_version(), 2);
  const nlohmann::json info = stored_infos()["t"];
  ASSERT_EQ(info["blocks"].size(), 40u);
  if (raw()) {
    EXPECT_EQ(info["block_bytes"], 100);
  } else {
    EXPECT_FALSE(info.contains("block_bytes"));
  }
  EXPECT_EQ(read_whole(reader, "t"), whole_);
  EXPECT_NO_THROW(reader.verify());
}

TEST_P(FormatV2, ARangeReadChecksOnlyTheBlocksItTouches) {
  damage_block(39);
  const ckpt::Reader reader(path_);
  std::vector<std::byte> out(8);
  reader.read_range("t", 0, 8, out.data());  // blocks 0 only: the damage is not its business
  EXPECT_EQ(std::memcmp(out.data(), whole_.data(), 8), 0);
  const std::string range =
      "stored bytes [" + std::to_string(block_begin(39)) + ", " + std::to_string(info_.stored_bytes) + ")";
  CKPT_EXPECT_ERROR(reader.read_range("t", 3992, 4000, out.data()), ckpt::IntegrityError,
                    ErrorId::integrity_tensor_checksum, path_, "tensor 't': checksum mismatch in block 39 of 40", range,
                    "expected xxh3 ", ", found ");
  std::vector<std::byte> all(whole_.size());
  CKPT_EXPECT_ERROR(reader.read_into("t", all.data(), all.size()), ckpt::IntegrityError,
                    ErrorId::integrity_tensor_checksum, path_, "block 39 of 40");
  CKPT_EXPECT_ERROR(reader.verify(), ckpt::IntegrityError, ErrorId::integrity_tensor_checksum, path_, "block 39");
}

TEST_P(FormatV2, ABlockIsVerifiedOnceThenTrusted) {
  const ckpt::Reader reader(path_);
  std::vector<std::byte> out(8);
  reader.read_range("t", 0, 8, out.data());  // verifies block 0
  damage_block(0);
  // A raw block is not hashed again (an encoded one would reach the decoder,
  // whose complaint depends on the damage).
  if (raw()) {
    EXPECT_NO_THROW(reader.read_range("t", 0, 8, out.data()));
  }
  const ckpt::Reader fresh(path_);
  CKPT_EXPECT_ERROR(fresh.read_range("t", 0, 8, out.data()), ckpt::IntegrityError, ErrorId::integrity_tensor_checksum,
                    path_, "block 0 of 40");
}

TEST_P(FormatV2, VerifyChecksTheWholeChecksumsBesideTheBlocks) {
  // Damage block 5 and re-seal its block checksum: reads trust the block,
  // verify() still finds the whole-tensor checksum wrong.
  std::string bytes = read_file(path_);
  const std::uint64_t begin = block_begin(5), end = block_begin(6);
  bytes[info_.file_offset + begin] ^= 0x01;
  write_file(path_, bytes);
  const std::string resealed =
      ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(bytes.data() + info_.file_offset + begin, end - begin));
  rewrite_metadata_json(path_, "ckpt.tensors",
                        [&](nlohmann::ordered_json& infos) { infos["t"]["blocks"][5] = resealed; });
  const ckpt::Reader reader(path_);
  std::vector<std::byte> out(8);
  if (raw()) {
    EXPECT_NO_THROW(reader.read_range("t", 500, 508, out.data()));
  }
  CKPT_EXPECT_ERROR(reader.verify(), ckpt::IntegrityError, ErrorId::integrity_tensor_checksum, path_, "tensor 't'",
                    "expected xxh3 ");
}

TEST_P(FormatV2, VerificationOffReadsWithoutChecking) {
  damage_block(0);
  const ckpt::Reader reader(path_, ckpt::ReadOptions{false, 0});
  std::vector<std::byte> out(8);
  if (raw()) {
    reader.read_range("t", 8, 16, out.data());
    EXPECT_EQ(std::memcmp(out.data(), whole_.data() + 8, 8), 0);
  }
  CKPT_EXPECT_ERROR(reader.verify(), ckpt::IntegrityError, ErrorId::integrity_tensor_checksum, path_, "block 0");
}

// Each malformed block member, in a header otherwise intact and sealed.
TEST_P(FormatV2, MalformedBlockMembersAreFormatMetadataErrors) {
  const std::string pristine = read_file(path_);
  const std::string count_text = "expected 40 block checksums";
  const auto expect_refused = [&](auto edit, const std::vector<std::string>& parts) {
    write_file(path_, pristine);
    rewrite_metadata_json(path_, "ckpt.tensors", [&](nlohmann::ordered_json& infos) { edit(infos["t"]); });
    try {
      const ckpt::Reader reader(path_);
      ADD_FAILURE() << "expected FormatError";
    } catch (const ckpt::FormatError& error) {
      expect_id_and_message(error, ErrorId::format_metadata, parts);
      EXPECT_EQ(error.tensor(), "t");
      EXPECT_EQ(error.file(), path_);
    }
  };
  expect_refused(
      [](nlohmann::ordered_json& t) {
        t.erase("blocks");
        t["spare"] = 1;
      },
      {count_text, "found no blocks member"});
  expect_refused([](nlohmann::ordered_json& t) { t["blocks"].erase(t["blocks"].size() - 1); },
                 {count_text, "found 39"});
  expect_refused([](nlohmann::ordered_json& t) { t["blocks"] = "0123456789abcdef"; }, {count_text, "found \""});
  expect_refused([](nlohmann::ordered_json& t) { t["blocks"][3] = "0123456789ABCDEF"; },
                 {count_text, "found block 3 \"0123456789ABCDEF\""});
  expect_refused([](nlohmann::ordered_json& t) { t["blocks"][3] = 7; }, {count_text, "found block 3 7"});
  expect_refused([](nlohmann::ordered_json& t) { t.erase("blocks"); }, {"exactly the keys", "(format version 2)"});
  if (raw()) {
    expect_refused([](nlohmann::ordered_json& t) { t["block_bytes"] = 0; },
                   {"block_bytes, an integer from 1 to 1073741824"});
    expect_refused([](nlohmann::ordered_json& t) { t["block_bytes"] = (std::uint64_t(1) << 30) + 1; },
                   {"block_bytes, an integer from 1 to"});
    expect_refused([](nlohmann::ordered_json& t) { t["block_bytes"] = "100"; }, {"block_bytes, an integer"});
    expect_refused([](nlohmann::ordered_json& t) { t["block_bytes"] = 200; },
                   {"expected 20 block checksums (one per 200 stored bytes", "found 40"});
  } else {
    expect_refused([](nlohmann::ordered_json& t) { t["block_bytes"] = 100; },
                   {"exactly the keys codec, xxh3, dtype, shape, chunk_bytes, chunks, raw_xxh3, blocks"});
  }
}

INSTANTIATE_TEST_SUITE_P(Codecs, FormatV2, ::testing::Values("raw", "zstd", "shuffle+zstd"), [](const auto& info) {
  return info.param == "raw"    ? std::string("raw")
         : info.param == "zstd" ? std::string("zstd")
                                : std::string("shuffle_zstd");
});

TEST(FormatV2Empty, AnEmptyRawTensorHasNoBlocksAndItsBlockBytes) {
  TempDir temp;
  const std::string path = temp.file("empty.ckpt");
  ckpt::write_checkpoint(path, {{"e", ckpt::TensorView(ckpt::DType::F32, {0}, nullptr)}}, {});
  const ckpt::Reader reader(path);
  const nlohmann::json info = nlohmann::json::parse(reader.raw_metadata().at("ckpt.tensors"))["e"];
  EXPECT_EQ(info["blocks"], nlohmann::json::array());
  EXPECT_EQ(info["block_bytes"], 4 << 20);
  EXPECT_EQ(reader.tensor("e").nbytes(), 0u);
  EXPECT_NO_THROW(reader.verify());
}

}  // namespace
}  // namespace ckpt_format_test

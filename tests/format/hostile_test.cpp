// Bad files: every way a header or layout can be wrong is refused with the
// right error class, id and a message naming the file, the tensor and what
// was expected versus found; never undefined behaviour or a large allocation.
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/detail/format/chunked.hpp"
#include "format_test_support.hpp"

namespace {

using namespace ckpt_format_test;
using ckpt::ErrorId;

std::string entry(const std::string& dtype, const std::string& shape, std::uint64_t begin, std::uint64_t end) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":[)" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

struct HostileFile {
  std::string label;
  std::string bytes;
  ErrorId id;
  std::vector<std::string> message_parts;  // besides the file name
};

std::ostream& operator<<(std::ostream& out, const HostileFile& file) { return out << file.label; }

std::vector<HostileFile> hostile_files() {
  const std::string four_bytes = "abcd";
  std::string rank_2000_shape = "[1";
  for (int i = 1; i < 2000; ++i) rank_2000_shape += ",1";
  rank_2000_shape += "]";
  // One hostile file per entry, laid out by hand.
  // clang-format off
  return {
      {"shorter_than_size_field", "\x01\x02\x03", ErrorId::format_truncated, {"at least 8 bytes", "found 3"}},
      {"header_size_over_limit", le64(100'000'001) + "{}", ErrorId::format_header_size,
       {"at most 100000000", "found 100000001"}},
      {"header_size_past_end", le64(4096) + "{}", ErrorId::format_truncated, {"4096 bytes", "file of 10 bytes"}},
      {"invalid_json", safetensors_bytes("{\"a\":", ""), ErrorId::format_header_json, {"invalid JSON"}},
      {"invalid_utf8", safetensors_bytes("{\"__metadata__\":{\"k\":\"\xC3\x28\"}}", ""), ErrorId::format_header_json,
       {"invalid JSON"}},
      {"deep_nesting", safetensors_bytes(std::string(100000, '[') + std::string(100000, ']'), ""),
       ErrorId::format_header_json, {"'{'"}},
      {"deep_nesting_in_object", safetensors_bytes("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", ""),
       ErrorId::format_header_json, {"nested at most", "found deeper"}},
      {"array_longer_than_any_shape", safetensors_bytes("{\"w\":" + entry("U8", rank_2000_shape, 0, 1) + "}", "x"),
       ErrorId::format_header_json, {"at most 1024 elements"}},
      {"duplicate_tensor", safetensors_bytes("{\"w\":" + entry("U8", "[4]", 0, 4) + ",\"w\":" + entry("U8", "[4]", 4, 8) + "}", four_bytes + four_bytes),
       ErrorId::format_header_json, {"unique keys", "'w' twice"}},
      {"nul_after_the_json", le64(8) + std::string("{}\0\0\0\0\0\0", 8), ErrorId::format_header_json,
       {"without NUL bytes", "at byte 2"}},
      {"leading_space", safetensors_bytes(" {}", ""), ErrorId::format_header_json, {"start with '{'"}},
      {"not_an_object", safetensors_bytes("{}", "").replace(8, 2, "[]"), ErrorId::format_header_json, {"start with '{'"}},
      {"offsets_past_end", safetensors_bytes("{\"w\":" + entry("U8", "[8]", 0, 8) + "}", four_bytes),
       ErrorId::format_truncated, {"tensor 'w'", "offset 8", "found 4 bytes"}},
      {"overlapping", safetensors_bytes("{\"a\":" + entry("U8", "[4]", 0, 4) + ",\"b\":" + entry("U8", "[4]", 2, 6) + "}", four_bytes + "xy"),
       ErrorId::format_offsets, {"tensor 'b'", "begin at offset 4", "found 2", "overlapping"}},
      {"gap", safetensors_bytes("{\"a\":" + entry("U8", "[4]", 0, 4) + ",\"b\":" + entry("U8", "[2]", 6, 8) + "}", four_bytes + "xyzw"),
       ErrorId::format_offsets, {"tensor 'b'", "begin at offset 4", "found 6", "gap"}},
      {"not_starting_at_zero", safetensors_bytes("{\"a\":" + entry("U8", "[4]", 1, 5) + "}", "x" + four_bytes),
       ErrorId::format_offsets, {"tensor 'a'", "offset 0", "found 1"}},
      {"begin_after_end", safetensors_bytes("{\"a\":" + entry("U8", "[0]", 4, 0) + "}", four_bytes),
       ErrorId::format_offsets, {"tensor 'a'", "BEGIN <= END", "[4, 0]"}},
      {"byte_size_mismatch", safetensors_bytes("{\"w\":" + entry("F32", "[2]", 0, 4) + "}", four_bytes),
       ErrorId::format_byte_size, {"tensor 'w'", "expected 8 bytes", "F32 [2]", "spanning 4"}},
      {"shape_overflow", safetensors_bytes("{\"w\":" + entry("F64", "[4294967296,4294967296,0]", 0, 0) + "}", ""),
       ErrorId::format_byte_size, {"tensor 'w'", "overflows 64 bits"}},
      {"byte_size_overflow", safetensors_bytes("{\"w\":" + entry("F64", "[2305843009213693952,4]", 0, 0) + "}", ""),
       ErrorId::format_byte_size, {"tensor 'w'", "overflows 64 bits"}},
      {"trailing_bytes", safetensors_bytes("{\"w\":" + entry("U8", "[4]", 0, 4) + "}", four_bytes + "!!"),
       ErrorId::format_trailing_bytes, {"end at byte", "found 2 trailing bytes"}},
      {"unknown_dtype", safetensors_bytes("{\"w\":" + entry("F4", "[4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"tensor 'w'", "dtype among BOOL, U8", "F8_E5M2", "\"F4\""}},
      {"extra_entry_field", safetensors_bytes(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4],"x":1}})", four_bytes),
       ErrorId::format_tensor_entry, {"tensor 'w'", "exactly the keys dtype, shape and data_offsets"}},
      {"negative_shape", safetensors_bytes("{\"w\":" + entry("U8", "[-4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"tensor 'w'", "non-negative integers", "-4"}},
      {"fractional_offsets", safetensors_bytes(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[0,4.0]}})", four_bytes),
       ErrorId::format_tensor_entry, {"tensor 'w'", "data_offsets [BEGIN, END]"}},
      {"empty_name", safetensors_bytes("{\"\":" + entry("U8", "[4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"non-empty tensor name"}},
      {"name_with_nul", safetensors_bytes("{\"a\\u0000b\":" + entry("U8", "[4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"without NUL"}},
      {"name_climbing_up", safetensors_bytes("{\"model/../../etc\":" + entry("U8", "[4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"'..' component"}},
      {"name_with_leading_slash", safetensors_bytes("{\"/model\":" + entry("U8", "[4]", 0, 4) + "}", four_bytes),
       ErrorId::format_tensor_entry, {"'/' at its ends"}},
      {"metadata_not_strings", safetensors_bytes(R"({"__metadata__":{"step":3}})", ""), ErrorId::format_metadata,
       {"'step'", "to be a string", "found number"}},
      {"metadata_not_object", safetensors_bytes(R"({"__metadata__":"x"})", ""), ErrorId::format_metadata,
       {"object of strings", "found string"}},
      {"ckpt_version_without_checksum", safetensors_bytes(R"({"__metadata__":{"ckpt.format_version":"1"}})", ""),
       ErrorId::format_metadata, {"header checksum"}},
      {"ckpt_version_not_a_number", safetensors_bytes(R"({"__metadata__":{"ckpt.format_version":"1a"}})", ""),
       ErrorId::format_metadata, {"positive integer", "'1a'"}},
  };
  // clang-format on
}

class FormatHostileFile : public ::testing::TestWithParam<HostileFile> {};

TEST_P(FormatHostileFile, IsRefusedWithItsErrorId) {
  TempDir dir;
  const std::string path = dir.file(GetParam().label + ".safetensors");
  write_file(path, GetParam().bytes);
  try {
    ckpt::Reader reader(path);
    ADD_FAILURE() << "expected FormatError " << static_cast<int>(GetParam().id) << ", nothing was thrown";
  } catch (const ckpt::FormatError& error) {
    EXPECT_EQ(error.file(), path);
    std::vector<std::string> parts = GetParam().message_parts;
    parts.push_back(path);
    expect_id_and_message(error, GetParam().id, parts);
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, FormatHostileFile, ::testing::ValuesIn(hostile_files()),
                         [](const ::testing::TestParamInfo<HostileFile>& info) { return info.param.label; });

// ckpt files: the information in __metadata__ is validated as strictly.
class FormatCkptMetadata : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("ckpt.safetensors");
    ckpt::SaveOptions options;
    options.codecs = ckpt::CodecPolicy("raw").for_names("packed", "zstd");
    options.chunk_bytes = 64;
    ckpt::write_checkpoint(
        path_,
        {{"weights", ckpt::TensorView(weights_.data(), {4})}, {"packed", ckpt::TensorView(packed_.data(), {100})}},
        {{"step", 7}}, options);
  }

  template <class Edit>
  void expect_refused(Edit edit, ErrorId id, const std::vector<std::string>& parts) {
    rewrite_metadata_json(path_, "ckpt.tensors", edit);
    CKPT_EXPECT_ERROR(ckpt::Reader{path_}, ckpt::FormatError, id, parts);
  }

  TempDir dir_;
  std::string path_;
  std::vector<float> weights_{1, 2, 3, 4};
  std::vector<std::int32_t> packed_ = std::vector<std::int32_t>(100, 42);
};

TEST_F(FormatCkptMetadata, MissingTensorInfoIsRefused) {
  expect_refused([](nlohmann::ordered_json& infos) { infos.erase("weights"); }, ErrorId::format_metadata,
                 {"describe the 2 tensors"});
}

TEST_F(FormatCkptMetadata, MalformedChecksumIsRefused) {
  expect_refused([](nlohmann::ordered_json& infos) { infos["weights"]["xxh3"] = "XYZ"; }, ErrorId::format_metadata,
                 {"tensor 'weights'", "16 lowercase hex digits", "XYZ"});
}

TEST_F(FormatCkptMetadata, ChunkCountThatDoesNotFitTheShapeIsRefused) {
  expect_refused([](nlohmann::ordered_json& infos) { infos["packed"]["chunks"].push_back(1); },
                 ErrorId::format_metadata, {"tensor 'packed'", "7 chunk sizes for 400 bytes in chunks of 64"});
}

TEST_F(FormatCkptMetadata, ChunkSizesThatDoNotAddUpAreRefused) {
  expect_refused([](nlohmann::ordered_json& infos) { infos["packed"]["chunks"][0] = 1; }, ErrorId::format_metadata,
                 {"tensor 'packed'", "adding up to the"});
}

// One rule, one error: the decoder refuses a chunk table exactly as the
// header parser does, whichever of them meets it first.
TEST_F(FormatCkptMetadata, ParserAndDecoderRefuseABadChunkTableWithTheSameError) {
  std::vector<std::uint64_t> chunks;
  rewrite_metadata_json(path_, "ckpt.tensors", [&](nlohmann::ordered_json& infos) {
    infos["packed"]["chunks"].push_back(1);
    chunks = infos["packed"]["chunks"].get<std::vector<std::uint64_t>>();
  });
  std::uint64_t stored_bytes = 0;
  for (std::size_t i = 0; i + 1 < chunks.size(); ++i) stored_bytes += chunks[i];  // as the tensor's offsets say
  const auto refusal = [](const std::function<void()>& action) -> std::optional<ckpt::FormatError> {
    try {
      action();
    } catch (const ckpt::FormatError& error) {
      return error;
    }
    return std::nullopt;
  };
  const auto parsed = refusal([&] { ckpt::Reader{path_}; });
  std::vector<std::byte> stored(stored_bytes), out(packed_.size() * sizeof(std::int32_t));
  const auto decoded = refusal([&] {
    ckpt::detail::decode_chunked(ckpt::RawCodec(), stored.data(), stored.size(), chunks, 64, sizeof(std::int32_t),
                                 out.data(), out.size(), 1, path_, "packed");
  });
  ASSERT_TRUE(parsed && decoded);
  EXPECT_EQ(parsed->id(), ErrorId::format_metadata);
  EXPECT_EQ(decoded->id(), parsed->id());
  EXPECT_EQ(std::string(decoded->what()), parsed->what());
  EXPECT_EQ(parsed->message(), "expected 7 chunk sizes for 400 bytes in chunks of 64, found 8");
}

TEST_F(FormatCkptMetadata, HugeDeclaredShapeIsRefusedBeforeAnyAllocation) {
  expect_refused(
      [](nlohmann::ordered_json& infos) {
        infos["packed"]["shape"] = {1ULL << 62, 1ULL << 62};
      },
      ErrorId::format_metadata, {"tensor 'packed'", "fits 64 bits"});
}

TEST_F(FormatCkptMetadata, ExpansionBeyondAnyCodecIsRefusedBeforeAnyAllocation) {
  // A few stored bytes declaring a gigabyte: consistent chunking, impossible ratio.
  expect_refused(
      [](nlohmann::ordered_json& infos) {
        nlohmann::ordered_json& packed = infos["packed"];
        std::uint64_t stored = 0;
        for (const auto& size : packed["chunks"]) stored += size.get<std::uint64_t>();
        packed["shape"] = {std::uint64_t(1) << 28};
        packed["chunk_bytes"] = std::uint64_t(1) << 30;
        packed["chunks"] = {stored};
      },
      ErrorId::format_metadata, {"tensor 'packed'", "1/65536"});
}

TEST_F(FormatCkptMetadata, DamagedMarksCannotPassACkptFileOffAsForeign) {
  // Break the header checksum's key and the version key: the remaining
  // ckpt.* keys still mark the file, so it is refused rather than read unchecked.
  std::string bytes = read_file(path_);
  bytes[ckpt::detail::checksum_value_offset - 4] ^= 0x01;
  bytes[bytes.find("ckpt.format_version") + 5] ^= 0x01;
  write_file(path_, bytes);
  CKPT_EXPECT_ERROR(ckpt::Reader{path_}, ckpt::FormatError, ErrorId::format_metadata, path_, "header checksum");
}

TEST_F(FormatCkptMetadata, ChecksumDefendsEveryTensorByte) {
  std::string bytes = read_file(path_);
  const std::uint64_t offset = ckpt::Reader(path_).find("weights")->file_offset;
  bytes[offset + 3] ^= 0x40;
  write_file(path_, bytes);
  const ckpt::Reader reader(path_);
  CKPT_EXPECT_ERROR(reader.tensor("weights"), ckpt::IntegrityError, ErrorId::integrity_tensor_checksum, path_,
                    "tensor 'weights'", "expected xxh3", "found");
  EXPECT_EQ(reader.tensor("packed").data_as<std::int32_t>()[99], 42);
}

TEST_F(FormatCkptMetadata, ChecksumDefendsEveryHeaderByte) {
  const std::string original = read_file(path_);
  const std::uint64_t data_start = 8 + ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(original.data()));
  // Every byte before the data, flipped one at a time, is caught: as a header
  // checksum mismatch or as a malformed header.
  for (std::uint64_t position = 0; position < data_start; ++position) {
    std::string bytes = original;
    bytes[position] ^= 0x01;
    write_file(path_, bytes);
    try {
      ckpt::Reader reader(path_);
      ADD_FAILURE() << "flip at header byte " << position << " went unnoticed";
    } catch (const ckpt::IntegrityError& error) {
      EXPECT_EQ(error.id(), ErrorId::integrity_header_checksum);
    } catch (const ckpt::FormatError&) {
      // A flip in the header size or the checksum's own key breaks the layout first.
    }
  }
}

TEST_F(FormatCkptMetadata, CorruptedUserMetadataIsAHeaderChecksumError) {
  std::string bytes = read_file(path_);
  const std::size_t step = bytes.find("step");
  ASSERT_NE(step, std::string::npos);
  bytes[step] = 'S';
  write_file(path_, bytes);
  CKPT_EXPECT_ERROR(ckpt::Reader{path_}, ckpt::IntegrityError, ErrorId::integrity_header_checksum, path_,
                    "header checksum mismatch", "expected xxh3", "found");
}

TEST_F(FormatCkptMetadata, UnknownCodecNamesTheCodecAndTheKnownOnes) {
  rewrite_metadata_json(path_, "ckpt.tensors",
                        [](nlohmann::ordered_json& infos) { infos["packed"]["codec"] = "lz-nonexistent"; });
  const ckpt::Reader reader(path_);  // the other tensors stay readable
  EXPECT_EQ(reader.tensor("weights").data_as<float>()[3], 4.0f);
  CKPT_EXPECT_ERROR(reader.tensor("packed"), ckpt::CodecError, ErrorId::codec_unknown, path_, "tensor 'packed'",
                    "lz-nonexistent", "known codecs", "raw");
  // The reader looks a codec up once, and says so again on every read that needs it.
  std::vector<std::int32_t> out(packed_.size());
  CKPT_EXPECT_ERROR(reader.read_into("packed", out.data(), out.size() * sizeof(std::int32_t)), ckpt::CodecError,
                    ErrorId::codec_unknown, path_, "tensor 'packed'", "lz-nonexistent");
}

TEST_F(FormatCkptMetadata, CorruptCompressedBytesWithMatchingChecksumAreADecodeError) {
  // Damage the stored stream and re-seal both checksums, as a buggy or hostile
  // writer would: the decoder itself must refuse it.
  std::string bytes = read_file(path_);
  const ckpt::TensorInfo info = *ckpt::Reader(path_).find("packed");
  for (std::uint64_t i = 0; i < info.stored_bytes; ++i) bytes[info.file_offset + i] = static_cast<char>(0xA5);
  write_file(path_, bytes);
  const std::string resealed =
      ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(bytes.data() + info.file_offset, info.stored_bytes));
  rewrite_metadata_json(path_, "ckpt.tensors", [&](nlohmann::ordered_json& infos) {
    infos["packed"]["xxh3"] = resealed;
    std::uint64_t begin = info.file_offset;  // format v2: each chunk's block checksum too
    for (std::size_t i = 0; i < infos["packed"]["chunks"].size(); ++i) {
      const auto size = infos["packed"]["chunks"][i].get<std::uint64_t>();
      infos["packed"]["blocks"][i] = ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(bytes.data() + begin, size));
      begin += size;
    }
  });
  CKPT_EXPECT_ERROR(ckpt::Reader(path_).tensor("packed"), ckpt::CodecError, ErrorId::codec_decode, path_,
                    "tensor 'packed'");
}

// Claims a whole chunk in one byte: denser than the format allows.
class OneByteCodec : public ckpt::Codec {
 public:
  std::string name() const override { return "format_test_one_byte"; }
  void encode(const std::byte*, std::size_t, std::size_t, std::vector<std::byte>& out) const override {
    out.push_back(std::byte{0});
  }
  void decode(const std::byte*, std::size_t, std::size_t, std::byte* out, std::size_t out_size) const override {
    std::fill(out, out + out_size, std::byte{0});
  }
};

TEST(FormatWriterArguments, CodecDenserThanTheFormatAllowsIsRefused) {
  ckpt::CodecRegistry::instance().register_codec(
      "format_test_one_byte", [](const std::string&) { return std::make_shared<const OneByteCodec>(); });
  TempDir dir;
  const std::string path = dir.file("dense.safetensors");
  const std::vector<float> zeros(1 << 20);
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy("format_test_one_byte");
  CKPT_EXPECT_ERROR(
      ckpt::write_checkpoint(path, {{"zeros", ckpt::TensorView(zeros.data(), {zeros.size()})}}, nullptr, options),
      ckpt::CodecError, ErrorId::codec_encode, path, "tensor 'zeros'", "format_test_one_byte", "1/65536");
  EXPECT_TRUE(dir.entries().empty());
}

TEST(FormatWriterArguments, BadNamesAndMetadataAreRefusedBeforeAnyFileIsCreated) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const float value = 1;
  const ckpt::TensorView view(&value, {});
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"a", view}, {"b", view}, {"a", view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_duplicate_name, path, "tensor 'a'", "unique");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"", view}}, nullptr), ckpt::ArgumentError, ErrorId::argument_name,
                    path, "non-empty");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{std::string("a\0b", 3), view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_name, path, "without NUL");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{std::string(1025, 'n'), view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_name, path, "at most 1024 bytes", "found 1025");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"__metadata__", view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_name, path, "reserved");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"\xC3\x28", view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_name, path, "UTF-8");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"a/../b", view}}, nullptr), ckpt::ArgumentError,
                    ErrorId::argument_name, path, "'..' component");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"a/", view}}, nullptr), ckpt::ArgumentError, ErrorId::argument_name,
                    path, "'/' at its ends");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {}, nlohmann::json::array()), ckpt::ArgumentError,
                    ErrorId::argument_invalid, path, "JSON object", "found array");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {}, {{"bad", "\xC3\x28"}}), ckpt::ArgumentError,
                    ErrorId::argument_invalid, path, "UTF-8");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"null", ckpt::TensorView(ckpt::DType::F32, {2}, nullptr)}}, nullptr),
                    ckpt::ArgumentError, ErrorId::argument_invalid, path, "tensor 'null'", "null pointer");
  ckpt::SaveOptions options;
  options.chunk_bytes = 0;
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"a", view}}, nullptr, options), ckpt::ArgumentError,
                    ErrorId::argument_invalid, path, "chunk_bytes", "found 0");
  options.chunk_bytes = std::size_t(1) << 20;
  options.codecs = ckpt::CodecPolicy("no-such-codec");
  CKPT_EXPECT_ERROR(ckpt::write_checkpoint(path, {{"a", view}}, nullptr, options), ckpt::CodecError,
                    ErrorId::codec_unknown, path, "tensor 'a'", "no-such-codec", "known codecs");
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace

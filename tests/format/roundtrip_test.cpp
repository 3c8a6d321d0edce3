// Round trips: what goes into a checkpoint comes back bit-exact, zero-copy for
// raw tensors, with the layout docs/format.md promises.
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "format_test_support.hpp"

namespace {

using namespace ckpt_format_test;
using ckpt::DType;

constexpr std::uint64_t pattern_rows = 5, pattern_cols = 7;

std::string tensor_name(DType dtype) { return "layer/" + std::string(ckpt::dtype_name(dtype)); }

TEST(FormatRoundTrip, EveryDtypeIsBitExactAndZeroCopy) {
  TempDir dir;
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::NamedTensor> tensors;
  for (DType dtype : ckpt::all_dtypes) {
    data.push_back(pattern_bytes(dtype, pattern_rows * pattern_cols));
    tensors.push_back({tensor_name(dtype), ckpt::TensorView(dtype, {pattern_rows, pattern_cols}, data.back().data())});
  }
  const std::string path = dir.file("all.safetensors");
  const ckpt::SaveStats stats = ckpt::write_checkpoint(path, tensors, nlohmann::json::object());
  EXPECT_EQ(stats.file_bytes, std::filesystem::file_size(path));

  const ckpt::Reader reader(path);
  ASSERT_EQ(reader.tensors().size(), tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const DType dtype = ckpt::all_dtypes[i];
    SCOPED_TRACE(tensor_name(dtype));
    const ckpt::TensorInfo* info = reader.find(tensor_name(dtype));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->dtype, dtype);
    EXPECT_EQ(info->shape, (ckpt::Shape{pattern_rows, pattern_cols}));
    EXPECT_EQ(info->codec, "raw");
    EXPECT_TRUE(info->checksummed);
    EXPECT_EQ(info->file_offset % ckpt::dtype_size(dtype), 0u);

    const ckpt::Tensor tensor = reader.tensor(tensor_name(dtype));
    EXPECT_FALSE(tensor.owns_data()) << "raw tensors must borrow the file mapping";
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(tensor.data()) % ckpt::dtype_size(dtype), 0u);
    EXPECT_EQ(bytes_as_string(tensor.data(), tensor.nbytes()), bytes_as_string(data[i].data(), data[i].size()));
  }
}

TEST(FormatRoundTrip, LayoutOrdersByElementSizeThenNameFromAligned64DataStart) {
  TempDir dir;
  const std::vector<std::uint8_t> bytes{1, 2, 3};
  const std::vector<double> wide{1.5, 2.5};
  const std::vector<std::uint16_t> halves{7};
  const std::string path = dir.file("layout.safetensors");
  ckpt::write_checkpoint(path,
                         {{"z_bytes", ckpt::TensorView(bytes.data(), {3})},
                          {"b_half", ckpt::TensorView(halves.data(), {1})},
                          {"a_bytes", ckpt::TensorView(bytes.data(), {3})},
                          {"m_wide", ckpt::TensorView(wide.data(), {2})}},
                         nullptr);
  const ckpt::Reader reader(path);
  std::vector<std::string> order;
  for (const ckpt::TensorInfo& info : reader.tensors()) order.push_back(info.name);
  EXPECT_EQ(order, (std::vector<std::string>{"m_wide", "b_half", "a_bytes", "z_bytes"}));
  EXPECT_EQ(reader.tensors().front().file_offset % 64, 0u);
  EXPECT_EQ(reader.tensors().back().file_offset + 3, reader.file_size()) << "no byte after the last tensor";
}

TEST(FormatRoundTrip, ScalarsAndZeroSizeTensors) {
  TempDir dir;
  const double scalar = -6.25;
  const std::int32_t ints[] = {4, 5, 6};
  const std::string path = dir.file("shapes.safetensors");
  ckpt::write_checkpoint(path,
                         {{"scalar", ckpt::TensorView(&scalar, {})},
                          {"empty", ckpt::TensorView(DType::F32, {0}, nullptr)},
                          {"empty3d", ckpt::TensorView(DType::I64, {3, 0, 2}, nullptr)},
                          {"ints", ckpt::TensorView(ints, {3})}},
                         nullptr);
  const ckpt::Reader reader(path);
  const ckpt::Tensor read_scalar = reader.tensor("scalar");
  EXPECT_EQ(read_scalar.shape(), ckpt::Shape{});
  EXPECT_EQ(*read_scalar.data_as<double>(), scalar);
  EXPECT_EQ(reader.tensor("empty").shape(), ckpt::Shape{0});
  EXPECT_EQ(reader.tensor("empty").nbytes(), 0u);
  EXPECT_EQ(reader.tensor("empty3d").shape(), (ckpt::Shape{3, 0, 2}));
  EXPECT_EQ(reader.tensor("ints").data_as<std::int32_t>()[2], 6);
  reader.verify();
}

TEST(FormatRoundTrip, MetadataRoundTripsAndFileIsMarked) {
  TempDir dir;
  const nlohmann::json metadata = {
      {"step", 1234},
      {"big", std::numeric_limits<std::uint64_t>::max()},
      {"negative", -17},
      {"lr", 0.1},
      {"name", "r\u00e9seau \"quoted\" \\ \u2603"},
      {"nested", {{"list", {1, 2.5, "three", nullptr, true}}, {"empty", nlohmann::json::object()}}},
  };
  const std::string path = dir.file("meta.safetensors");
  ckpt::write_checkpoint(path, {}, metadata);
  const ckpt::Reader reader(path);
  EXPECT_EQ(reader.metadata(), metadata);
  EXPECT_TRUE(reader.written_by_ckpt());
  EXPECT_EQ(reader.format_version(), ckpt::format_version);
  EXPECT_EQ(reader.raw_metadata().at("format"), "pt");
  EXPECT_EQ(reader.raw_metadata().at("ckpt.format_version"), std::to_string(ckpt::format_version));
  EXPECT_TRUE(reader.tensors().empty());
}

TEST(FormatRoundTrip, ReadingOneTensorReadsOnlyThatTensor) {
  TempDir dir;
  const std::vector<float> kept(1000, 1.5f), damaged(1000, 2.5f);
  const std::string path = dir.file("two.safetensors");
  ckpt::write_checkpoint(
      path, {{"kept", ckpt::TensorView(kept.data(), {1000})}, {"damaged", ckpt::TensorView(damaged.data(), {1000})}},
      nullptr);
  std::string bytes = read_file(path);
  const std::uint64_t damaged_offset = ckpt::Reader(path).find("damaged")->file_offset;
  bytes[damaged_offset + 17] ^= 0x01;
  write_file(path, bytes);

  const ckpt::Reader reader(path);
  const ckpt::Tensor tensor = reader.tensor("kept");
  EXPECT_EQ(tensor.data_as<float>()[999], 1.5f);
  CKPT_EXPECT_ERROR(reader.tensor("damaged"), ckpt::IntegrityError, ckpt::ErrorId::integrity_tensor_checksum, path,
                    "'damaged'", "expected xxh3");
  CKPT_EXPECT_ERROR(reader.verify(), ckpt::IntegrityError, ckpt::ErrorId::integrity_tensor_checksum, "'damaged'");

  // Verification is the default, not a requirement: a user may opt out.
  const ckpt::Reader unchecked(path, ckpt::ReadOptions{false, 1});
  EXPECT_NO_THROW(unchecked.tensor("damaged"));
}

TEST(FormatRoundTrip, ReadIntoCopiesExactlyAndChecksTheBufferSize) {
  TempDir dir;
  const std::vector<std::int64_t> values{-1, 2, -3, 4};
  const std::string path = dir.file("into.safetensors");
  ckpt::write_checkpoint(path, {{"v", ckpt::TensorView(values.data(), {2, 2})}}, nullptr);
  const ckpt::Reader reader(path);
  std::vector<std::int64_t> out(4);
  reader.read_into("v", out.data(), out.size() * sizeof(std::int64_t));
  EXPECT_EQ(out, values);
  CKPT_EXPECT_ERROR(reader.read_into("v", out.data(), 8), ckpt::ArgumentError, ckpt::ErrorId::argument_invalid, path,
                    "'v'", "32 bytes", "found 8");
  CKPT_EXPECT_ERROR(reader.tensor("w"), ckpt::MismatchError, ckpt::ErrorId::mismatch_missing_tensor, path, "'w'");
}

// Opening once cost time quadratic in the tensor count (nlohmann's callback
// parser rescanned the header per tensor): 100,000 tensors took minutes.
TEST(FormatRoundTrip, HundredThousandTinyTensorsOpenAndReadBack) {
  TempDir dir;
  constexpr std::int32_t count = 100000;
  std::vector<std::int32_t> values(count);
  std::vector<ckpt::NamedTensor> tensors;
  tensors.reserve(count);
  for (std::int32_t i = 0; i < count; ++i) {
    values[i] = i * 3 - 7;
    tensors.push_back({"block" + std::to_string(i) + "/w", ckpt::TensorView(&values[i], {1})});
  }
  const std::string path = dir.file("many.safetensors");
  ckpt::SaveOptions options;
  options.durable = false;
  ckpt::write_checkpoint(path, tensors, nullptr, options);

  const ckpt::Reader reader(path);
  ASSERT_EQ(reader.tensors().size(), std::size_t(count));
  std::int32_t last = 0;
  reader.read_into("block" + std::to_string(count - 1) + "/w", &last, sizeof last);
  EXPECT_EQ(last, values.back());
  EXPECT_EQ(reader.tensor("block0/w").data_as<std::int32_t>()[0], values.front());
}

TEST(FormatRoundTrip, ForeignSafetensorsFileOpensUnchecksummed) {
  TempDir dir;
  // As the reference writer lays it out: header padded to a multiple of 8.
  std::string header = R"({"b":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},)"
                       R"("a":{"dtype":"F64","shape":[1],"data_offsets":[0,8]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const double value = 3.25;
  const std::string path = dir.file("foreign.safetensors");
  write_file(path, safetensors_bytes(header, bytes_as_string(reinterpret_cast<const std::byte*>(&value), 8) + "xyz"));

  const ckpt::Reader reader(path);
  EXPECT_FALSE(reader.written_by_ckpt());
  EXPECT_EQ(reader.format_version(), 0);
  EXPECT_EQ(reader.metadata(), nlohmann::json::object());
  EXPECT_FALSE(reader.find("a")->checksummed);
  EXPECT_EQ(*reader.tensor("a").data_as<double>(), value);
  EXPECT_EQ(bytes_as_string(reader.tensor("b").data(), 3), "xyz");
  EXPECT_NO_THROW(reader.verify());
}

TEST(FormatRoundTrip, MisalignedForeignTensorIsCopiedNotBorrowed) {
  TempDir dir;
  std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                       R"("f":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  const float value = -2.5f;
  const std::string path = dir.file("misaligned.safetensors");
  write_file(path, safetensors_bytes(header, "q" + bytes_as_string(reinterpret_cast<const std::byte*>(&value), 4)));
  const ckpt::Tensor tensor = ckpt::Reader(path).tensor("f");
  EXPECT_TRUE(tensor.owns_data());
  EXPECT_EQ(*tensor.data_as<float>(), value);
}

TEST(FormatRoundTrip, OverwriteLeavesOpenReadersOnTheOldFile) {
  TempDir dir;
  const std::string path = dir.file("same.safetensors");
  const std::int32_t first = 1, second = 2;
  ckpt::write_checkpoint(path, {{"x", ckpt::TensorView(&first, {})}}, nullptr);
  const ckpt::Reader old_reader(path);
  ckpt::write_checkpoint(path, {{"x", ckpt::TensorView(&second, {})}}, nullptr);
  EXPECT_EQ(*old_reader.tensor("x").data_as<std::int32_t>(), first);
  EXPECT_EQ(*ckpt::Reader(path).tensor("x").data_as<std::int32_t>(), second);
  EXPECT_EQ(dir.entries().size(), 1u) << "no temp file left behind";
}

TEST(FormatRoundTrip, NewerFormatVersionIsRefused) {
  TempDir dir;
  const std::string path = dir.file("future.safetensors");
  ckpt::write_checkpoint(path, {}, nullptr);
  // Incremental files are written as version 3 (docs/format.md, section 8).
  const int newest = ckpt::detail::newest_readable_format_version;
  const std::string newer = std::to_string(newest + 1);
  rewrite_header(path, [&](nlohmann::ordered_json& header) { header["__metadata__"]["ckpt.format_version"] = newer; });
  CKPT_EXPECT_ERROR(ckpt::Reader{path}, ckpt::FormatError, ckpt::ErrorId::format_newer_version, path, "newer",
                    "format version " + newer, "up to " + std::to_string(newest));
}

// The dynamic form: a tool that knows nothing of the state copies a
// checkpoint tensor by tensor, straight from one file's mapping to the next.
TEST(FormatRoundTrip, DynamicCopyThroughNamesAndViewsIsExact) {
  TempDir dir;
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::NamedTensor> tensors;
  for (DType dtype : ckpt::all_dtypes) {
    data.push_back(pattern_bytes(dtype, 11));
    tensors.push_back({tensor_name(dtype), ckpt::TensorView(dtype, {11}, data.back().data())});
  }
  const std::string original = dir.file("original.safetensors"), copy = dir.file("copy.safetensors");
  ckpt::write_checkpoint(original, tensors, {{"epoch", 3}});

  const ckpt::Reader reader(original);
  std::vector<ckpt::Tensor> loaded;
  std::vector<ckpt::NamedTensor> views;
  for (const ckpt::TensorInfo& info : reader.tensors()) {
    loaded.push_back(reader.tensor(info.name));
    views.push_back({info.name, loaded.back().view()});
  }
  ckpt::write_checkpoint(copy, views, reader.metadata());
  EXPECT_EQ(read_file(copy), read_file(original)) << "same tensors and metadata give the same bytes";
}

// Codec round trips over every registered codec: the codecs area's codecs
// are picked up without editing this test.
std::vector<std::string> registered_codecs() { return ckpt::CodecRegistry::instance().names(); }

class FormatCodecRoundTrip : public ::testing::TestWithParam<std::string> {};

TEST_P(FormatCodecRoundTrip, EveryDtypeIsBitExactThroughTheCodec) {
  TempDir dir;
  constexpr std::uint64_t count = 3001;  // several chunks, the last one partial
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::NamedTensor> tensors;
  for (DType dtype : ckpt::all_dtypes) {
    data.push_back(pattern_bytes(dtype, count));
    tensors.push_back({tensor_name(dtype), ckpt::TensorView(dtype, {count}, data.back().data())});
  }
  tensors.push_back({"empty", ckpt::TensorView(DType::F32, {0, 3}, nullptr)});
  const float scalar = 9.75f;
  tensors.push_back({"scalar", ckpt::TensorView(&scalar, {})});

  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(GetParam());
  options.chunk_bytes = 1000;
  const std::string path = dir.file("codec.safetensors");
  ckpt::write_checkpoint(path, tensors, nullptr, options);

  const ckpt::Reader reader(path);
  reader.verify();
  for (std::size_t i = 0; i < data.size(); ++i) {
    const DType dtype = ckpt::all_dtypes[i];
    SCOPED_TRACE(tensor_name(dtype));
    EXPECT_EQ(reader.find(tensor_name(dtype))->codec, GetParam());
    const ckpt::Tensor tensor = reader.tensor(tensor_name(dtype));
    EXPECT_EQ(tensor.dtype(), dtype);
    EXPECT_EQ(tensor.shape(), ckpt::Shape{count});
    EXPECT_EQ(bytes_as_string(tensor.data(), tensor.nbytes()), bytes_as_string(data[i].data(), data[i].size()));
  }
  EXPECT_EQ(reader.tensor("empty").shape(), (ckpt::Shape{0, 3}));
  EXPECT_EQ(*reader.tensor("scalar").data_as<float>(), scalar);
}

INSTANTIATE_TEST_SUITE_P(Registered, FormatCodecRoundTrip, ::testing::ValuesIn(registered_codecs()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name;
                           for (char c : info.param) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
                           return name;
                         });

}  // namespace

// .npz export and import: exact round trips, and hostile or foreign archives
// refused with the file and tensor named.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zip.h>

#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/interop/npz.hpp"
#include "cli_test_support.hpp"
#include "support/expect_error.hpp"

namespace {

using ckpt::test::TempDir;
using testing::HasSubstr;

void expect_same(const ckpt::TensorSet& loaded, const std::vector<ckpt::NamedTensor>& expected) {
  ASSERT_EQ(loaded.tensors.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const auto& [name, tensor] = loaded.tensors[i];
    EXPECT_EQ(name, expected[i].name);
    EXPECT_EQ(tensor.dtype(), expected[i].view.dtype()) << name;
    EXPECT_EQ(tensor.shape(), expected[i].view.shape()) << name;
    ASSERT_EQ(tensor.nbytes(), expected[i].view.nbytes()) << name;
    if (tensor.nbytes() != 0) {
      EXPECT_EQ(std::memcmp(tensor.data(), expected[i].view.data(), tensor.nbytes()), 0) << name;
    }
  }
}

bool has_member(const std::string& path, const char* member) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_RDONLY, &code);
  const bool found = archive != nullptr && zip_name_locate(archive, member, 0) >= 0;
  if (archive != nullptr) zip_discard(archive);
  return found;
}

// An archive of raw members, to hand the reader what other tools (or attackers) write.
void write_zip(const std::string& path, const std::vector<std::pair<std::string, std::string>>& members,
               bool compress = false) {
  int code = 0;
  zip_t* archive = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  ASSERT_NE(archive, nullptr);
  for (const auto& [name, bytes] : members) {
    zip_source_t* source = zip_source_buffer(archive, bytes.data(), bytes.size(), 0);
    const zip_int64_t index = zip_file_add(archive, name.c_str(), source, 0);
    ASSERT_GE(index, 0);
    zip_set_file_compression(archive, static_cast<zip_uint64_t>(index), compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0);
  }
  ASSERT_EQ(zip_close(archive), 0);
}

std::string npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  header.append(64 - (10 + header.size() + 1) % 64, ' ');
  header += '\n';
  return std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size() & 0xFF) +
         static_cast<char>(header.size() >> 8) + header + data;
}

template <class Exception>
void expect_error(const std::function<void()>& load, ckpt::ErrorId id, const std::string& file,
                  const std::string& tensor, const std::string& message) {
  const auto error = ckpt::test::expect_error<Exception>(load, id, {message});
  if (!error) return;
  EXPECT_EQ(error->file(), file) << error->what();
  EXPECT_EQ(error->tensor(), tensor) << error->what();
}

class NpzRoundTrip : public testing::TestWithParam<bool> {};

TEST_P(NpzRoundTrip, KeepsEveryDtypeShapeAndTheMetadataBitExact) {
  TempDir dir;
  const ckpt::test::SampleTensors sample;
  const nlohmann::json metadata = {{"step", 12}, {"config", {{"lr", 0.001}, {"layers", {1, 2}}}}};
  const std::string path = dir.file("model.npz");
  ckpt::save_npz(path, sample.named(), metadata, ckpt::NpzOptions{GetParam(), 9});
  const ckpt::TensorSet loaded = ckpt::load_npz(path);
  expect_same(loaded, sample.named());
  EXPECT_EQ(loaded.metadata, metadata);
}

INSTANTIATE_TEST_SUITE_P(StoredAndDeflated, NpzRoundTrip, testing::Bool());

TEST(Npz, WritesTheSidecarOnlyWhenNumpyNeedsHelp) {
  TempDir dir;
  std::vector<float> values{1, 2};
  const std::string plain = dir.file("plain.npz");
  ckpt::save_npz(plain, {{"w", ckpt::TensorView(values.data(), {2})}});
  EXPECT_FALSE(has_member(plain, ckpt::npz_sidecar_name));
  EXPECT_TRUE(has_member(plain, "w.npy"));
  const std::string with_metadata = dir.file("meta.npz");
  ckpt::save_npz(with_metadata, {{"w", ckpt::TensorView(values.data(), {2})}}, {{"step", 1}});
  EXPECT_TRUE(has_member(with_metadata, ckpt::npz_sidecar_name));
}

TEST(Npz, RefusesDuplicateNames) {
  TempDir dir;
  std::vector<float> values{1};
  expect_error<ckpt::ArgumentError>(
      [&] {
        ckpt::save_npz(dir.file("d.npz"),
                       {{"w", ckpt::TensorView(values.data(), {1})}, {"w", ckpt::TensorView(values.data(), {1})}});
      },
      ckpt::ErrorId::argument_duplicate_name, dir.file("d.npz"), "w", "unique");
  EXPECT_FALSE(ckpt::test::path_exists(dir.file("d.npz")));
}

TEST(Npz, ReordersFortranOrderArrays) {
  TempDir dir;
  const std::string path = dir.file("f.npz");
  const std::uint8_t column_major[] = {0, 3, 1, 4, 2, 5};
  write_zip(path, {{"m.npy", npy("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3), }",
                                 std::string(reinterpret_cast<const char*>(column_major), 6))}});
  const ckpt::TensorSet loaded = ckpt::load_npz(path);
  const ckpt::Tensor& m = loaded.tensors.at(0).second;
  EXPECT_EQ(m.shape(), (ckpt::Shape{2, 3}));
  const auto* values = m.data_as<std::uint8_t>();
  EXPECT_EQ(std::vector<int>(values, values + 6), (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(Npz, RefusesForeignOrHostileMembersNamingFileAndTensor) {
  TempDir dir;
  const std::string path = dir.file("bad.npz");
  const std::string f4_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }";
  using ckpt::ErrorId;
  struct Case {
    std::vector<std::pair<std::string, std::string>> members;
    ErrorId id;
    std::string tensor, message;
  };
  const std::vector<Case> cases = {
      {{{"w.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0'))}},
       ErrorId::format_tensor_entry,
       "w",
       "big-endian"},
      {{{"w.npy", npy(f4_dict, std::string(7, '\0'))}}, ErrorId::format_byte_size, "w", "expected 8 data bytes"},
      {{{"w.npy", npy(f4_dict, std::string(9, '\0'))}}, ErrorId::format_byte_size, "w", "found 9"},
      {{{"w.npy", "\x93NUMPY"}}, ErrorId::format_header_size, "w", "not a .npy array"},
      {{{"w.npy", std::string("\x93NUMPY\x01\x00\xff\x00{", 11)}},
       ErrorId::format_truncated,
       "w",
       "header runs past the end"},
      {{{"w.npy", std::string("\x93NUMPY\x01\x00\x01\x00{}", 12)}},
       ErrorId::format_header_json,
       "w",
       "bad .npy header at offset 1"},
      {{{"w.npy", std::string("\x93NUMPY\x02\x00\x01\x00", 10)}},
       ErrorId::format_header_size,
       "w",
       "truncated .npy preamble"},
      {{{"notes.txt", "hello"}}, ErrorId::format_tensor_entry, "", "'notes.txt') is not a NAME.npy array"},
      {{{"w.npy", npy(f4_dict, std::string(8, '\0'))}, {"__ckpt__.json", "{\"dtypes\": {\"w\": \"BF16\"}}"}},
       ErrorId::format_metadata,
       "w",
       "says BF16, which needs <u2 bits; found <f4"},
      {{{"w.npy", npy(f4_dict, std::string(8, '\0'))}, {"__ckpt__.json", "{\"dtypes\": {\"v\": \"BF16\"}}"}},
       ErrorId::format_metadata,
       "v",
       "names a tensor the archive does not hold"},
      {{{"w.npy", npy(f4_dict, std::string(8, '\0'))}, {"__ckpt__.json", "{\"dtypes\": {\"w\": \"F128\"}}"}},
       ErrorId::format_metadata,
       "w",
       "unknown dtype"},
      {{{"__ckpt__.json", "not json"}}, ErrorId::format_metadata, "", "expected a JSON object"},
  };
  for (const Case& c : cases) {
    write_zip(path, c.members);
    expect_error<ckpt::FormatError>([&] { ckpt::load_npz(path); }, c.id, path, c.tensor, c.message);
  }
}

TEST(Npz, ACorruptMemberFailsItsCrcNamingTheTensor) {
  TempDir dir;
  const std::string path = dir.file("crc.npz");
  std::vector<std::uint32_t> values(64, 0xA5A5A5A5u);
  ckpt::save_npz(path, {{"weights", ckpt::TensorView(values.data(), {64})}});
  std::string bytes = ckpt::test::read_file(path);
  const std::size_t data = bytes.find(std::string(16, '\xA5'));
  ASSERT_NE(data, std::string::npos);
  bytes[data + 5] = 0;
  ckpt::test::write_file(path, bytes);
  expect_error<ckpt::IntegrityError>([&] { ckpt::load_npz(path); }, ckpt::ErrorId::integrity_tensor_checksum, path,
                                     "weights", "CRC");
}

// Sets a member's uncompressed size in both its local and central headers.
void claim_size(std::string& bytes, std::uint32_t size) {
  const auto patch = [&](const std::string& signature, std::size_t field) {
    const std::size_t header = bytes.find(signature);
    ASSERT_NE(header, std::string::npos);
    std::memcpy(&bytes[header + field], &size, 4);
  };
  patch(std::string("PK\x03\x04", 4), 22);
  patch(std::string("PK\x01\x02", 4), 24);
}

TEST(Npz, RefusesSizeClaimsBeyondWhatDeflateCanProduce) {
  TempDir dir;
  const std::string path = dir.file("bomb.npz");
  std::vector<float> values(256, 1.0f);
  ckpt::save_npz(path, {{"w", ckpt::TensorView(values.data(), {256})}}, {}, ckpt::NpzOptions{true, 9});
  std::string bytes = ckpt::test::read_file(path);
  claim_size(bytes, 0x7FFFFFF0u);
  ckpt::test::write_file(path, bytes);
  expect_error<ckpt::FormatError>([&] { ckpt::load_npz(path); }, ckpt::ErrorId::format_truncated, path, "w",
                                  "beyond deflate's limit");
}

TEST(Npz, NotAZipOrMissingFileIsReportedClearly) {
  TempDir dir;
  const std::string garbage = dir.file("garbage.npz");
  ckpt::test::write_file(garbage, std::string(100, 'x'));
  expect_error<ckpt::FormatError>([&] { ckpt::load_npz(garbage); }, ckpt::ErrorId::format_truncated, garbage, "",
                                  "Not a zip archive");
  expect_error<ckpt::IoError>([&] { ckpt::load_npz(dir.file("missing.npz")); }, ckpt::ErrorId::io_open,
                              dir.file("missing.npz"), "", "No such file");
}

}  // namespace

// HDF5 export and import: exact round trips, metadata as attributes, and
// files ckpt cannot hold refused with the file and dataset named.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstring>
#include <string>
#include <vector>

#include "ckpt/interop/hdf5.hpp"
#include "cli_test_support.hpp"
#include "support/expect_error.hpp"

namespace {

using ckpt::test::TempDir;
using testing::HasSubstr;

class Hdf5RoundTrip : public testing::TestWithParam<int> {};

TEST_P(Hdf5RoundTrip, KeepsEveryDtypeShapeAndTheMetadata) {
  TempDir dir;
  const ckpt::test::SampleTensors sample;
  const nlohmann::json metadata = {{"step", 12},      {"offset", -3},
                                   {"lr", 0.001},     {"name", "run"},
                                   {"done", false},   {"config", {{"layers", {1, 2}}}},
                                   {"note", nullptr}, {"big", 18446744073709551615ull}};
  const std::string path = dir.file("model.h5");
  ckpt::save_hdf5(path, sample.named(), metadata, ckpt::Hdf5Options{GetParam()});
  const ckpt::TensorSet loaded = ckpt::load_hdf5(path);
  EXPECT_EQ(loaded.metadata, metadata);
  const auto expected = sample.named();
  ASSERT_EQ(loaded.tensors.size(), expected.size());
  for (const ckpt::NamedTensor& tensor : expected) {
    const ckpt::Tensor* found = loaded.find(tensor.name);
    ASSERT_NE(found, nullptr) << tensor.name;
    EXPECT_EQ(found->dtype(), tensor.view.dtype()) << tensor.name;
    EXPECT_EQ(found->shape(), tensor.view.shape()) << tensor.name;
    ASSERT_EQ(found->nbytes(), tensor.view.nbytes());
    if (found->nbytes() != 0) {
      EXPECT_EQ(std::memcmp(found->data(), tensor.view.data(), found->nbytes()), 0) << tensor.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(ContiguousAndDeflated, Hdf5RoundTrip, testing::Values(-1, 6));

// Runs `edit` on the file opened read-write, to plant what other tools write.
template <class Edit>
void edit_file(const std::string& path, Edit edit) {
  const hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  edit(file);
  H5Fclose(file);
}

// Loading `path` throws FormatError `id` naming the file and `tensor`, with `message` in its text.
void expect_format_error(const std::string& path, const std::string& tensor, ckpt::ErrorId id,
                         const std::string& message) {
  const auto error = ckpt::test::expect_error<ckpt::FormatError>([&] { ckpt::load_hdf5(path); }, id, {message});
  if (!error) return;
  EXPECT_EQ(error->file(), path);
  EXPECT_EQ(error->tensor(), tensor);
}

TEST(Hdf5, RefusesDatasetsOfTypesCkptCannotHold) {
  TempDir dir;
  const std::string path = dir.file("strings.h5");
  ckpt::save_hdf5(path, {});
  edit_file(path, [](hid_t file) {
    const hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, 8);
    const hsize_t dims[] = {2};
    const hid_t space = H5Screate_simple(1, dims, nullptr);
    const hid_t group = H5Gcreate2(file, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t dataset = H5Dcreate2(group, "labels", type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(dataset);
    H5Gclose(group);
    H5Sclose(space);
    H5Tclose(type);
  });
  expect_format_error(path, "group/labels", ckpt::ErrorId::format_tensor_entry, "unsupported HDF5 element type");
}

TEST(Hdf5, RefusesARealDtypeThatDoesNotMatchTheStoredBits) {
  TempDir dir;
  const std::string path = dir.file("mismatch.h5");
  std::vector<float> values{1, 2};
  ckpt::save_hdf5(path, {{"w", ckpt::TensorView(values.data(), {2})}});
  edit_file(path, [&](hid_t file) {
    const hid_t dataset = H5Dopen2(file, "w", H5P_DEFAULT);
    ckpt::detail::write_hdf5_string_attribute(dataset, ckpt::hdf5_dtype_attribute, "BF16", path, "w");
    H5Dclose(dataset);
  });
  expect_format_error(path, "w", ckpt::ErrorId::format_tensor_entry, "says BF16, expected U16 bits, found F32");
}

TEST(Hdf5, NotAnHdf5FileOrMissingFileIsReportedClearly) {
  TempDir dir;
  const std::string garbage = dir.file("garbage.h5");
  ckpt::test::write_file(garbage, std::string(100, 'x'));
  expect_format_error(garbage, "", ckpt::ErrorId::format_header_size, "not an HDF5 file");
  try {
    ckpt::load_hdf5(dir.file("missing.h5"));
    ADD_FAILURE();
  } catch (const ckpt::IoError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::io_open);
    EXPECT_EQ(error.file(), dir.file("missing.h5"));
  }
}

TEST(Hdf5, RefusesNamesThatWouldNotComeBackAsWritten) {
  TempDir dir;
  std::vector<float> values{1};
  // ckpt refuses "/root", "a/../b" and "trailing/" for every format; HDF5 also needs these refused.
  for (const std::string name : {"a//b", "a/./b"}) {
    try {
      ckpt::save_hdf5(dir.file("n.h5"), {{name, ckpt::TensorView(values.data(), {1})}});
      ADD_FAILURE() << name;
    } catch (const ckpt::ArgumentError& error) {
      EXPECT_EQ(error.id(), ckpt::ErrorId::argument_name) << name;
      EXPECT_EQ(error.tensor(), name);
      EXPECT_THAT(error.what(), HasSubstr("HDF5 dataset"));
    }
  }
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
}

TEST(Hdf5, RefusesMetadataKeysThatCannotBeAttributesAndLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("bad.h5");
  try {
    ckpt::save_hdf5(path, {}, {{ckpt::hdf5_json_keys_attribute, 1}});
    ADD_FAILURE();
  } catch (const ckpt::ArgumentError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::argument_invalid);
    EXPECT_THAT(error.what(), HasSubstr("cannot be an HDF5 attribute"));
  }
  EXPECT_FALSE(ckpt::test::path_exists(path));
  EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "the temp file is removed";
}

// The ckpt tool recognises HDF5 by its superblock signature, which the HDF5
// library looks for at offset 0, 512, 1024, 2048, ...: behind a user block too.
class CliHdf5Signature : public testing::TestWithParam<std::size_t> {};

TEST_P(CliHdf5Signature, AFileWithoutExtensionIsReadAsHdf5) {
  TempDir dir;
  const ckpt::test::SampleTensors sample;
  const std::string original = dir.file("a.safetensors");
  ckpt::write_checkpoint(original, sample.named(), {{"step", 3}});
  ASSERT_EQ(ckpt::test::run_cli({"convert", original, dir.file("a.h5")}).exit_code, 0);
  const std::string file = dir.file("exported");
  ckpt::test::write_file(file, std::string(GetParam(), '\0') + ckpt::test::read_file(dir.file("a.h5")));

  const auto info = ckpt::test::run_cli({"info", file, "--json"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["format"], "hdf5");
  const auto diff = ckpt::test::run_cli({"diff", original, file});
  EXPECT_EQ(diff.exit_code, 0) << diff.out << diff.err;
  EXPECT_THAT(diff.out, HasSubstr("identical: 7 tensors"));
}

INSTANTIATE_TEST_SUITE_P(UserBlockSizes, CliHdf5Signature, testing::Values(0, 512, 2048));

}  // namespace

// A nested training state saved with Checkpoint<State> and loaded into a
// fresh one comes back bit for bit, through every way of describing a type.

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ckpt/checkpoint.hpp"
#include "round_trip_state.hpp"
#include "serialize_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::TempDir;
using serialize_test::expect_error;
using serialize_test::expect_same_saved_state;
using serialize_test::TrainState;

// Each test starts from a filled state and a file to save it to.
class RoundTrip : public ::testing::Test {
 protected:
  RoundTrip() { serialize_test::fill(saved, 7); }
  void save(const ckpt::SaveOptions& options = {}) { ckpt::Checkpoint<TrainState>(options).save(path, saved); }

  TempDir dir;
  const std::string path = dir.file("state.safetensors");
  TrainState saved;
};

TEST_F(RoundTrip, NestedStateComesBackBitExact) {
  save();
  TrainState loaded;  // a fresh process: architecture built, values and dynamic parts not
  const ckpt::LoadReport report = ckpt::Checkpoint<TrainState>().load(path, loaded);
  EXPECT_TRUE(report.ok()) << report.to_string();
  expect_same_saved_state(saved, loaded);
  EXPECT_EQ(loaded.model.projection.at(1, 2), saved.model.projection.at(1, 2));
  EXPECT_EQ(loaded.model.mask, saved.model.mask);
  ASSERT_EQ(loaded.model.blocks.size(), 2u);
  EXPECT_EQ(loaded.model.blocks[1].id, 8);
  EXPECT_EQ(loaded.run_name, "run-7");
  for (int i = 0; i < 100; ++i) ASSERT_EQ(loaded.rng(), saved.rng()) << "draw " << i;
}

TEST_F(RoundTrip, FileHasHierarchicalNamesAndTrueShapes) {
  save();

  const ckpt::Reader reader(path);
  const auto expect_tensor = [&](const std::string& name, ckpt::DType dtype, const ckpt::Shape& shape) {
    const ckpt::TensorInfo* info = reader.find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->dtype, dtype) << name;
    EXPECT_EQ(info->shape, shape) << name;
  };
  expect_tensor("model/fc1/weight", ckpt::DType::F32, {3, 4});
  expect_tensor("model/embedding/table", ckpt::DType::F32, {5, 2});
  expect_tensor("model/projection", ckpt::DType::F64, {2, 3});
  expect_tensor("model/kernel", ckpt::DType::F32, {2, 3, 2});
  expect_tensor("model/counts", ckpt::DType::I16, {4});
  expect_tensor("model/mask", ckpt::DType::BOOL, {5});
  expect_tensor("model/buffers/running/mean", ckpt::DType::F64, {2});
  expect_tensor("model/extra", ckpt::DType::I32, {2, 2});
  expect_tensor("model/blocks/1/gain", ckpt::DType::F64, {1});
  expect_tensor("optimizer/momentum_buffer/fc1.weight", ckpt::DType::F32, {12});
  // The third-party matrix is stored row-major.
  const ckpt::Tensor projection = reader.tensor("model/projection");
  EXPECT_EQ(projection.data_as<double>()[1], saved.model.projection.at(0, 1));
  EXPECT_EQ(reader.metadata().at("step"), 1007);
  EXPECT_EQ(reader.metadata().at("model/blocks/0/id"), 7);
  EXPECT_EQ(reader.metadata().at("optimizer/options/nesterov"), false);
}

TEST_F(RoundTrip, SavingViewsTheStateWithoutCopying) {
  const TrainState& read_only = saved;
  const ckpt::CollectedState collected = ckpt::collect_state(read_only);
  const auto view_of = [&](const std::string& name) {
    for (const ckpt::NamedTensor& tensor : collected.tensors) {
      if (tensor.name == name) return tensor.view;
    }
    ADD_FAILURE() << "no tensor " << name;
    return ckpt::TensorView();
  };
  EXPECT_EQ(view_of("model/fc1/weight").data(), reinterpret_cast<const std::byte*>(saved.model.fc1.weight.data()));
  EXPECT_EQ(view_of("model/kernel").data(), reinterpret_cast<const std::byte*>(&saved.model.kernel));
  EXPECT_EQ(view_of("model/extra").data(), saved.model.extra.data());
  // Only the converting traits (column-major matrix, std::vector<bool>) own copies.
  EXPECT_EQ(collected.owned.size(), 2u);
}

TEST_F(RoundTrip, LoadingReadsIntoTheStatesOwnMemory) {
  save();

  TrainState loaded;
  const float* weight_memory = loaded.model.fc1.weight.data();
  ckpt::Checkpoint<TrainState>().load(path, loaded);
  EXPECT_EQ(loaded.model.fc1.weight.data(), weight_memory) << "a sized vector is filled in place";
  // A raw tensor loaded into ckpt::Tensor borrows the file mapping.
  EXPECT_FALSE(loaded.model.extra.owns_data());
  EXPECT_EQ(loaded.model.extra.data_as<std::int32_t>()[3], 21);
}

#if defined(CKPT_WITH_ZSTD)
TEST_F(RoundTrip, CodecPolicyChoosesCodecsPerName) {
  ckpt::SaveOptions options;
  options.codecs.for_names("optimizer/*", "shuffle+zstd");
  save(options);

  const ckpt::Reader reader(path);
  EXPECT_EQ(reader.find("optimizer/momentum_buffer/fc1.weight")->codec, "shuffle+zstd");
  EXPECT_EQ(reader.find("model/fc1/weight")->codec, "raw");
  TrainState loaded;
  EXPECT_TRUE(ckpt::Checkpoint<TrainState>().load(reader, loaded).ok());
  expect_same_saved_state(saved, loaded);
}
#endif

TEST_F(RoundTrip, ShapedVectorOfWrongSizeNamesTheTensor) {
  saved.model.fc1.weight.pop_back();
  const auto error =
      expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_invalid, [&] { ckpt::collect_state(saved); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->tensor(), "model/fc1/weight");
  EXPECT_NE(std::string(error->what()).find("shape [3, 4] holds 12 elements, but the vector has 11"), std::string::npos)
      << error->what();
}

// The hook knows neither file nor name; the save adds both, once each, and
// keeps the hook's class, id and words.
TEST_F(RoundTrip, HookErrorNamesTheFileAndTheTensorOnce) {
  saved.model.fc1.weight.pop_back();
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_invalid, [&] { save(); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->file(), path);
  EXPECT_EQ(error->tensor(), "model/fc1/weight");
  EXPECT_EQ(error->message(), "ckpt::shaped: shape [3, 4] holds 12 elements, but the vector has 11");
  EXPECT_EQ(std::string(error->what()),
            "[ckpt.argument_error.601] file '" + path + "': tensor 'model/fc1/weight': " + error->message());
  EXPECT_TRUE(dir.names().empty()) << "nothing is written when the state cannot be collected";
}

// A state that is nothing but named tensors: what a tool that does not know
// the type loads.
TEST_F(RoundTrip, MapOfTensorsLoadsAnyCheckpoint) {
  save();

  std::map<std::string, ckpt::Tensor> tensors;
  const ckpt::LoadReport report = ckpt::Checkpoint<std::map<std::string, ckpt::Tensor>>().load(path, tensors);
  EXPECT_TRUE(report.ok()) << report.to_string();
  EXPECT_EQ(tensors.size(), ckpt::collect_state(saved).tensors.size());
  EXPECT_EQ(tensors.at("model/fc1/weight").shape(), (ckpt::Shape{3, 4}));
  EXPECT_EQ(tensors.at("model/counts").data_as<std::int16_t>()[2], 300);
}

TEST(RoundTripBools, BoolBytesOtherThanZeroOrOneLoadAsTrue) {
  TempDir dir;
  const std::string path = dir.file("bools.safetensors");
  const unsigned char bytes[3] = {0, 1, 2};
  ckpt::write_checkpoint(path, {{"flags", ckpt::TensorView(ckpt::DType::BOOL, {3}, bytes)}}, nlohmann::json::object());

  using Flags = serialize_test::Named<bool[3]>;
  Flags state{"flags"};
  ckpt::Checkpoint<Flags>().load(path, state);
  unsigned char loaded[3];
  std::memcpy(loaded, state.value, 3);
  EXPECT_EQ(loaded[0], 0);
  EXPECT_EQ(loaded[1], 1);
  EXPECT_EQ(loaded[2], 1);
}

}  // namespace

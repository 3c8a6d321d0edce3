// Loading a checkpoint into a state that differs from it: strict loads fail
// with every problem in one error and change nothing; non-strict loads take
// what matches and report the rest.

#include <gtest/gtest.h>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.hpp"
#include "serialize_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::TempDir;
using serialize_test::expect_error;

struct SavedState {
  std::vector<float> weight = std::vector<float>(6, 1.5f);
  std::vector<float> bias = {0.5f, 0.25f};
  std::vector<float> scale = {2.0f};
  std::vector<double> stale = {9.0};
  std::int32_t step = 42;
  std::string note = "saved";

  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {2, 3}))("bias", bias)("scale", scale)("stale", stale)("step", step)("note",
                                                                                                           note);
  }
};

// Differs from SavedState in five ways: "bias" has the wrong dtype, "weight"
// the wrong shape, "momentum" and "epoch" are not in the file, "stale" is
// not in this state. "scale", "step" and "note" match.
struct ChangedState {
  std::vector<float> weight = std::vector<float>(6, 0.0f);
  std::vector<double> bias = {0.0, 0.0};
  std::vector<float> scale = {0.0f};
  std::vector<float> momentum = {0.0f, 0.0f};
  std::int32_t step = 0;
  std::string note = "fresh";
  std::int64_t epoch = -1;

  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {3, 2}))("bias", bias)("scale", scale)("momentum", momentum)("step", step);
    ar("note", note)("epoch", epoch);
  }
};

class LoadReportTest : public ::testing::Test {
 protected:
  void SetUp() override { ckpt::Checkpoint<SavedState>().save(path, SavedState{}); }
  TempDir dir;
  const std::string path = dir.file("saved.safetensors");
};

bool contains(const std::vector<std::string>& lines, const std::string& line) {
  for (const std::string& candidate : lines) {
    if (candidate == line) return true;
  }
  return false;
}

TEST_F(LoadReportTest, StrictLoadListsEveryProblemInOneError) {
  ChangedState state;
  const auto error = expect_error<ckpt::MismatchError>(ckpt::ErrorId::mismatch_state,
                                                       [&] { ckpt::Checkpoint<ChangedState>().load(path, state); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->file(), path);
  const std::string message = error->what();
  for (const char* expected :
       {"(5 problems)", "momentum: tensor F32 [2]", "epoch: metadata integer", "stale: tensor F64 [1]",
        "bias: expected F64, found F32", "weight: expected [3, 2], found [2, 3]"}) {
    EXPECT_NE(message.find(expected), std::string::npos) << "'" << expected << "' not in: " << message;
  }
  // Nothing was loaded, not even what matched.
  EXPECT_EQ(state.scale[0], 0.0f);
  EXPECT_EQ(state.step, 0);
  EXPECT_EQ(state.note, "fresh");
}

TEST_F(LoadReportTest, NonStrictLoadTakesWhatMatchesAndReportsTheRest) {
  ChangedState state;
  const ckpt::LoadOptions options{/*strict=*/false};
  const ckpt::LoadReport report = ckpt::Checkpoint<ChangedState>({}, options).load(path, state);

  EXPECT_FALSE(report.ok());
  EXPECT_EQ(report.problem_count(), 5u);
  EXPECT_TRUE(contains(report.missing, "momentum: tensor F32 [2]"));
  EXPECT_TRUE(contains(report.missing, "epoch: metadata integer"));
  EXPECT_TRUE(contains(report.unexpected, "stale: tensor F64 [1]"));
  EXPECT_TRUE(contains(report.dtype_mismatch, "bias: expected F64, found F32"));
  EXPECT_TRUE(contains(report.shape_mismatch, "weight: expected [3, 2], found [2, 3]"));

  EXPECT_EQ(state.scale[0], 2.0f);
  EXPECT_EQ(state.step, 42);
  EXPECT_EQ(state.note, "saved");
  // Mismatched targets keep their values.
  EXPECT_EQ(state.weight, std::vector<float>(6, 0.0f));
  EXPECT_EQ(state.bias, (std::vector<double>{0.0, 0.0}));
  EXPECT_EQ(state.epoch, -1);
}

TEST_F(LoadReportTest, MatchingStateReportsNothing) {
  SavedState state;
  state.step = 0;
  const ckpt::LoadReport report = ckpt::Checkpoint<SavedState>().load(path, state);
  EXPECT_TRUE(report.ok());
  EXPECT_EQ(report.to_string(), "the checkpoint matches the state");
  EXPECT_EQ(state.step, 42);
}

TEST_F(LoadReportTest, LoadFromAnOpenReader) {
  const ckpt::Reader reader(path);
  SavedState state;
  state.note.clear();
  EXPECT_TRUE(ckpt::Checkpoint<SavedState>().load(reader, state).ok());
  EXPECT_EQ(state.note, "saved");
}

TEST_F(LoadReportTest, SizedVectorOfAnotherLengthIsAShapeMismatch) {
  SavedState state;
  state.bias = {1.0f, 2.0f, 3.0f};
  const ckpt::LoadReport report = ckpt::Checkpoint<SavedState>({}, {false}).load(path, state);
  EXPECT_TRUE(contains(report.shape_mismatch, "bias: expected [3], found [2]")) << report.to_string();
}

struct Typed {
  std::int32_t count = 0;
  std::int8_t small = 0;
  bool flag = false;
  std::mt19937 rng;
  template <class Archive>
  void describe(Archive& ar) {
    ar("count", count)("small", small)("flag", flag)("rng", rng);
  }
};

TEST(LoadReport, MetadataOfTheWrongTypeIsReportedWithWhatWasFound) {
  TempDir dir;
  const std::string path = dir.file("typed.safetensors");
  const nlohmann::json metadata = {{"count", "ten"}, {"small", 300}, {"flag", 1}, {"rng", "12 not a state"}};
  ckpt::write_checkpoint(path, {}, metadata);

  Typed state;
  const ckpt::LoadReport report = ckpt::Checkpoint<Typed>({}, {false}).load(path, state);
  EXPECT_TRUE(contains(report.dtype_mismatch, "count: expected metadata integer, found \"ten\"")) << report.to_string();
  EXPECT_TRUE(contains(report.dtype_mismatch, "small: expected metadata integer, found 300")) << report.to_string();
  EXPECT_TRUE(contains(report.dtype_mismatch, "flag: expected metadata boolean, found 1")) << report.to_string();
  EXPECT_TRUE(contains(report.dtype_mismatch, "rng: expected metadata random engine state, found \"12 not a state\""))
      << report.to_string();
  EXPECT_EQ(state.count, 0);
  EXPECT_EQ(state.rng, std::mt19937());
}

}  // namespace

struct Slot {
  std::vector<float> w;
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", w);
  }
};

using Slots = serialize_test::Named<std::map<std::string, Slot>>;

TEST(LoadReport, MapTakesTheFilesKeysAndLeavesUnusableNamesUnexpected) {
  TempDir dir;
  const std::string path = dir.file("slots.safetensors");
  const float values[2] = {1.0f, 2.0f};
  // "slots//w" has an empty key: no describe() could have written it.
  ckpt::write_checkpoint(path,
                         {{"slots/a/w", ckpt::TensorView(values, {2})}, {"slots//w", ckpt::TensorView(values, {1})}},
                         nlohmann::json::object());

  Slots state{"slots"};
  const ckpt::LoadReport report = ckpt::Checkpoint<Slots>({}, {false}).load(path, state);
  ASSERT_EQ(state.value.size(), 1u);
  EXPECT_EQ(state.value["a"].w, (std::vector<float>{1.0f, 2.0f}));
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"slots//w: tensor F32 [1]"});
}

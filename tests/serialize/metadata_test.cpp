// Scalars, strings, enums, JSON and random engines travel in the JSON
// metadata and come back exactly.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <locale>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.hpp"
#include "serialize_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::TempDir;

enum class Phase : std::int8_t { warmup = -1, train = 2, eval = 5 };

struct Scalars {
  std::string name;
  int epoch = 0;
  std::int64_t smallest = 0;
  std::uint64_t largest = 0;
  double loss = 0;
  double negative_zero = 0;
  double subnormal = 0;
  double not_a_number = 0;
  double infinity = 0;
  double negative_infinity = 0;
  float learning_rate = 0;
  bool done = false;
  char letter = 0;
  Phase phase = Phase::warmup;
  nlohmann::json config;

  template <class Archive>
  void describe(Archive& ar) {
    ar("name", name)("epoch", epoch)("smallest", smallest)("largest", largest)("loss", loss);
    ar("negative_zero", negative_zero)("subnormal", subnormal)("not_a_number", not_a_number);
    ar("infinity", infinity)("negative_infinity", negative_infinity)("learning_rate", learning_rate);
    ar("done", done)("letter", letter)("phase", phase)("config", config);
  }
};

Scalars example_scalars() {
  Scalars scalars;
  scalars.name = "résumé \"quoted\"\n";
  scalars.epoch = -12;
  scalars.smallest = std::numeric_limits<std::int64_t>::min();
  scalars.largest = std::numeric_limits<std::uint64_t>::max();
  scalars.loss = 0.1 + 0.2;
  scalars.negative_zero = -0.0;
  scalars.subnormal = std::numeric_limits<double>::denorm_min();
  scalars.not_a_number = std::numeric_limits<double>::quiet_NaN();
  scalars.infinity = std::numeric_limits<double>::infinity();
  scalars.negative_infinity = -std::numeric_limits<double>::infinity();
  scalars.learning_rate = 3e-4f;
  scalars.done = true;
  scalars.letter = 'x';
  scalars.phase = Phase::eval;
  scalars.config = {{"layers", {4, 3, 2}}, {"activation", "relu"}, {"dropout", nullptr}};
  return scalars;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

TEST(Metadata, ScalarsStringsEnumsAndJsonComeBackExactly) {
  TempDir dir;
  const std::string path = dir.file("scalars.safetensors");
  const Scalars saved = example_scalars();
  ckpt::Checkpoint<Scalars>().save(path, saved);

  Scalars loaded;
  EXPECT_TRUE(ckpt::Checkpoint<Scalars>().load(path, loaded).ok());
  EXPECT_EQ(loaded.name, saved.name);
  EXPECT_EQ(loaded.epoch, saved.epoch);
  EXPECT_EQ(loaded.smallest, saved.smallest);
  EXPECT_EQ(loaded.largest, saved.largest);
  EXPECT_TRUE(same_bits(loaded.loss, saved.loss));
  EXPECT_TRUE(same_bits(loaded.negative_zero, saved.negative_zero));
  EXPECT_TRUE(same_bits(loaded.subnormal, saved.subnormal));
  EXPECT_TRUE(std::isnan(loaded.not_a_number));
  EXPECT_EQ(loaded.infinity, saved.infinity);
  EXPECT_EQ(loaded.negative_infinity, saved.negative_infinity);
  EXPECT_EQ(loaded.learning_rate, saved.learning_rate);
  EXPECT_EQ(loaded.done, true);
  EXPECT_EQ(loaded.letter, 'x');
  EXPECT_EQ(loaded.phase, Phase::eval);
  EXPECT_EQ(loaded.config, saved.config);
}

TEST(Metadata, FileHoldsPlainJsonOtherToolsCanRead) {
  TempDir dir;
  const std::string path = dir.file("scalars.safetensors");
  ckpt::Checkpoint<Scalars>().save(path, example_scalars());
  const ckpt::Reader reader(path);
  const nlohmann::json& metadata = reader.metadata();
  EXPECT_EQ(metadata.at("phase"), 5);
  EXPECT_EQ(metadata.at("not_a_number"), "NaN");
  EXPECT_EQ(metadata.at("negative_infinity"), "-Infinity");
  EXPECT_EQ(metadata.at("config").at("activation"), "relu");
  EXPECT_EQ(metadata.at("largest"), std::numeric_limits<std::uint64_t>::max());
}

template <class Engine>
using EngineState = serialize_test::Named<Engine>;

template <class Engine>
class RandomEngines : public ::testing::Test {};
using Engines =
    ::testing::Types<std::mt19937, std::mt19937_64, std::minstd_rand0, std::minstd_rand, std::ranlux24_base,
                     std::ranlux48_base, std::ranlux24, std::ranlux48, std::knuth_b, std::default_random_engine>;
TYPED_TEST_SUITE(RandomEngines, Engines, ::testing::internal::DefaultNameGenerator);

TYPED_TEST(RandomEngines, RestoredEngineContinuesTheSameSequence) {
  TempDir dir;
  const std::string path = dir.file("rng.safetensors");
  EngineState<TypeParam> saved{"rng"};
  saved.value.seed(12345);
  saved.value.discard(777);
  ckpt::Checkpoint<EngineState<TypeParam>>().save(path, saved);

  EngineState<TypeParam> loaded{"rng"};  // default seed: a different position
  ASSERT_NE(loaded.value, saved.value);
  ckpt::Checkpoint<EngineState<TypeParam>>().load(path, loaded);
  EXPECT_EQ(loaded.value, saved.value);
  for (int i = 0; i < 2000; ++i) ASSERT_EQ(loaded.value(), saved.value()) << "draw " << i;
}

// A locale that writes 1234567 as "1,234,567".
struct ThousandsGrouping : std::numpunct<char> {
  char do_thousands_sep() const override { return ','; }
  std::string do_grouping() const override { return "\3"; }
};

TEST(Metadata, EngineStateIgnoresTheGlobalLocale) {
  TempDir dir;
  const std::string path = dir.file("rng.safetensors");
  EngineState<std::mt19937> saved{"rng"};
  saved.value.discard(10);
  const std::locale previous = std::locale::global(std::locale(std::locale::classic(), new ThousandsGrouping));
  ckpt::Checkpoint<EngineState<std::mt19937>>().save(path, saved);
  std::locale::global(previous);

  EngineState<std::mt19937> loaded{"rng"};
  ckpt::Checkpoint<EngineState<std::mt19937>>().load(path, loaded);
  EXPECT_EQ(loaded.value, saved.value);
}

}  // namespace

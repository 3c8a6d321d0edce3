#include <gtest/gtest.h>

#include "ckpt/detail/manager/checkpoint_naming.hpp"

namespace {

using ckpt::detail::CheckpointNaming;
using ckpt::detail::ParsedCheckpointName;

TEST(CheckpointNaming, ZeroPaddedStepRoundTrips) {
  const CheckpointNaming naming("ckpt-{step:08}.safetensors");
  EXPECT_EQ(naming.file_name({137, std::nullopt, {}}), "ckpt-00000137.safetensors");
  const auto parsed = naming.parse("ckpt-00000137.safetensors");
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->step, 137u);
  EXPECT_EQ(naming.parse("ckpt-123456789.safetensors")->step, 123456789u);  // wider than the pad
}

TEST(CheckpointNaming, ForeignNamesAreNotOurs) {
  const CheckpointNaming naming("ckpt-{step:08}.safetensors");
  for (const char* name : {"ckpt-137.safetensors", "ckpt-00000137.safetensors.bak", "model.safetensors",
                           ".ckpt-00000137.safetensors.tmp-1", "ckpt-0000013x.safetensors", "ckpt-.safetensors",
                           "ckpt-00000000000000000000137.safetensors", "ckpt-99999999999999999999.safetensors"}) {
    EXPECT_FALSE(naming.parse(name)) << name;
  }
}

TEST(CheckpointNaming, EpochAndMetricFields) {
  const CheckpointNaming naming("run-e{epoch:03}-{step}-loss{val_loss:.3f}.safetensors");
  ParsedCheckpointName values{42, 7, {{"val_loss", 0.12345}}};
  const std::string name = naming.file_name(values);
  EXPECT_EQ(name, "run-e007-42-loss0.123.safetensors");
  const auto parsed = naming.parse(name);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->step, 42u);
  EXPECT_EQ(parsed->epoch, 7u);
  EXPECT_DOUBLE_EQ(parsed->metrics.at("val_loss"), 0.123);
  EXPECT_TRUE(naming.parse("run-e007-42-loss-1.5e-05.safetensors"));
}

TEST(CheckpointNaming, MissingFieldValueIsAnArgumentError) {
  const CheckpointNaming naming("e{epoch}-{step}.safetensors");
  try {
    naming.file_name({1, std::nullopt, {}});
    FAIL() << "expected ArgumentError";
  } catch (const ckpt::ArgumentError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::argument_invalid);
    EXPECT_NE(std::string(error.what()).find("e{epoch}-{step}.safetensors"), std::string::npos);
    EXPECT_NE(std::string(error.what()).find("epoch"), std::string::npos);
  }
}

TEST(CheckpointNaming, BadTemplatesAreRejectedWithTheTemplateNamed) {
  for (const char* pattern : {"ckpt.safetensors", ".ckpt-{step}", "dir/ckpt-{step}", "ckpt-{step", "ckpt-}{step}",
                              "ckpt-{step:x}", "ckpt-{1bad}-{step}", "{loss:08}-{step}", ""}) {
    try {
      CheckpointNaming naming(pattern);
      ADD_FAILURE() << "accepted " << pattern;
    } catch (const ckpt::ArgumentError& error) {
      EXPECT_EQ(error.id(), ckpt::ErrorId::argument_invalid);
      EXPECT_NE(std::string(error.what()).find("'" + std::string(pattern) + "'"), std::string::npos) << error.what();
    }
  }
}

TEST(CheckpointNaming, RegexCharactersInLiteralsAreLiteral) {
  const CheckpointNaming naming("a+b(c).{step}.st");
  EXPECT_TRUE(naming.parse("a+b(c).5.st"));
  EXPECT_FALSE(naming.parse("aab(c).5.st"));
  EXPECT_FALSE(naming.parse("a+b(c)x5.st"));
}

}  // namespace

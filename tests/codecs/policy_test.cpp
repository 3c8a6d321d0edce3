#include <gtest/gtest.h>

#include <string>

#include "ckpt/codec.hpp"

namespace {

using ckpt::CodecPolicy;
using ckpt::DType;
using ckpt::detail::glob_match;

TEST(GlobMatch, StarSpansSlashesAndQuestionMarkOneCharacter) {
  EXPECT_TRUE(glob_match("optimizer/*", "optimizer/exp_avg/fc1.weight"));
  EXPECT_TRUE(glob_match("*.weight", "model/fc1.weight"));
  EXPECT_TRUE(glob_match("*exp_avg*", "optimizer/exp_avg_sq/fc1.weight"));
  EXPECT_TRUE(glob_match("fc?.bias", "fc1.bias"));
  EXPECT_TRUE(glob_match("*", ""));
  EXPECT_TRUE(glob_match("a*b*c", "abc"));
  EXPECT_FALSE(glob_match("fc?.bias", "fc12.bias"));
  EXPECT_FALSE(glob_match("*.weight", "model/fc1.weight.bak"));
  EXPECT_FALSE(glob_match("model/*", "optimizer/model/x"));
  EXPECT_FALSE(glob_match("", "x"));
  // Many stars against a long near-miss stay fast (no exponential backtracking).
  EXPECT_FALSE(glob_match("*a*a*a*a*a*a*a*a*a*b", std::string(5000, 'a')));
}

TEST(CodecPolicy, DefaultAppliesWithoutRules) {
  const CodecPolicy policy("zstd:3");
  EXPECT_EQ(policy.default_spec(), "zstd:3");
  EXPECT_EQ(policy.spec_for("model/w", DType::F32), "zstd:3");
  EXPECT_EQ(CodecPolicy().spec_for("model/w", DType::F32), "raw");
}

TEST(CodecPolicy, DtypeRuleOverridesDefaultAndLaterRuleReplacesEarlier) {
  CodecPolicy policy("raw");
  policy.for_dtype(DType::F32, "zstd").for_dtype(DType::F32, "shuffle+zstd").for_dtype(DType::BF16, "zstd:1");
  EXPECT_EQ(policy.spec_for("w", DType::F32), "shuffle+zstd");
  EXPECT_EQ(policy.spec_for("w", DType::BF16), "zstd:1");
  EXPECT_EQ(policy.spec_for("w", DType::I64), "raw");
}

TEST(CodecPolicy, FirstMatchingNameRuleWinsOverDtypeAndDefault) {
  // Compress optimizer moments, keep weights raw, except one layer.
  CodecPolicy policy("raw");
  policy.for_dtype(DType::F32, "zstd")
      .for_names("model/embedding*", "shuffle+zstd:3")
      .for_names("model/*", "raw")
      .for_names("optimizer/exp_avg*", "shuffle+zstd");
  EXPECT_EQ(policy.spec_for("model/embedding.weight", DType::F32), "shuffle+zstd:3");
  EXPECT_EQ(policy.spec_for("model/fc1.weight", DType::F32), "raw");
  EXPECT_EQ(policy.spec_for("optimizer/exp_avg_sq/fc1.weight", DType::F32), "shuffle+zstd");
  EXPECT_EQ(policy.spec_for("optimizer/step", DType::F32), "zstd");
  EXPECT_EQ(policy.spec_for("optimizer/step", DType::I64), "raw");
}

TEST(CodecPolicy, AssignsFromASpec) {
  CodecPolicy policy;
  policy = "shuffle+zstd";
  EXPECT_EQ(policy.spec_for("w", DType::F32), "shuffle+zstd");
  policy = std::string("zstd:5");
  EXPECT_EQ(policy.default_spec(), "zstd:5");
}

}  // namespace

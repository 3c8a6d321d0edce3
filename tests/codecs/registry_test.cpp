#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "test_support.hpp"
#include "xor_codec.hpp"

namespace {

using ckpt::CodecRegistry;
using ckpt::ErrorId;

bool registered(const std::string& name) {
  const auto names = CodecRegistry::instance().names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

TEST(CodecRegistry, HasTheBuiltInCodecs) {
  EXPECT_TRUE(CodecRegistry::instance().contains("raw"));
  EXPECT_EQ(CodecRegistry::instance().make("raw")->name(), "raw");
#if defined(CKPT_WITH_ZSTD)
  EXPECT_TRUE(registered("zstd"));
  EXPECT_TRUE(registered("shuffle+zstd"));
  EXPECT_EQ(CodecRegistry::instance().make("zstd")->name(), "zstd");
  EXPECT_EQ(CodecRegistry::instance().make("shuffle+zstd:3")->name(), "shuffle+zstd");
#endif
}

#if defined(CKPT_WITH_ZSTD)
TEST(CodecRegistry, ParsesZstdLevels) {
  const auto level_of = [](const std::string& spec) {
    return dynamic_cast<const ckpt::ZstdCodec&>(*CodecRegistry::instance().make(spec)).level();
  };
  EXPECT_EQ(level_of("zstd"), ckpt::ZstdCodec::default_level);
  EXPECT_EQ(level_of("zstd:7"), 7);
  EXPECT_EQ(level_of("shuffle+zstd:-3"), -3);
  for (const char* spec : {"zstd:fast", "zstd:3x", "zstd:99", "shuffle+zstd:1.5"}) {
    ckpt_test::expect_error<ckpt::ArgumentError>([&] { CodecRegistry::instance().make(spec); },
                                                 ErrorId::argument_invalid, {"zstd"});
  }
}
#endif

TEST(CodecRegistry, UnknownCodecErrorListsTheKnownOnes) {
  ckpt_test::expect_error<ckpt::CodecError>([] { CodecRegistry::instance().make("lz77:9"); }, ErrorId::codec_unknown,
                                            {"unknown codec 'lz77'", "known codecs: ", "raw"});
#if defined(CKPT_WITH_ZSTD)
  ckpt_test::expect_error<ckpt::CodecError>([] { CodecRegistry::instance().make("lz77"); }, ErrorId::codec_unknown,
                                            {"shuffle+zstd", "zstd"});
#endif
}

TEST(CodecRegistry, RawRefusesParameters) {
  ckpt_test::expect_error<ckpt::ArgumentError>([] { CodecRegistry::instance().make("raw:1"); },
                                               ErrorId::argument_invalid, {"'raw' takes no parameters", "'1'"});
}

TEST(CodecRegistry, RejectsBadNamesAndEmptyFactories) {
  const auto factory = ckpt_test::XorCodec::from_parameters;
  for (const std::string& name : {std::string(), std::string("a:b"), std::string("a\0b", 3)}) {
    ckpt_test::expect_error<ckpt::ArgumentError>(
        [&] { CodecRegistry::instance().register_codec(name, factory); }, ErrorId::argument_invalid,
        {"codec name"});
  }
  ckpt_test::expect_error<ckpt::ArgumentError>(
      [] { CodecRegistry::instance().register_codec("nothing", nullptr); }, ErrorId::argument_invalid,
      {"'nothing'", "without a factory"});
  EXPECT_FALSE(CodecRegistry::instance().contains("nothing"));
}

TEST(CodecRegistry, UserCodecIsFoundByNameWithParameters) {
  ckpt_test::register_xor_codec();
  EXPECT_TRUE(registered("xor"));
  const auto codec = CodecRegistry::instance().make("xor:17");
  std::vector<std::byte> encoded;
  const std::byte input[] = {std::byte{1}, std::byte{2}};
  codec->encode(input, 2, 1, encoded);
  ASSERT_EQ(encoded.size(), 3u);
  EXPECT_EQ(encoded[0], std::byte{17});
  EXPECT_EQ(encoded[1], std::byte{1 ^ 17});
}

TEST(RawCodec, RoundTripsAndRefusesWrongSizes) {
  const ckpt::RawCodec raw;
  const auto input = ckpt_test::tensor_like_bytes(100);
  std::vector<std::byte> stored;
  raw.encode(input.data(), input.size(), 4, stored);
  EXPECT_EQ(stored, input);
  std::vector<std::byte> output(100);
  raw.decode(stored.data(), stored.size(), 4, output.data(), output.size());
  EXPECT_EQ(output, input);
  ckpt_test::expect_error<ckpt::CodecError>([&] { raw.decode(stored.data(), 99, 4, output.data(), 100); },
                                            ErrorId::codec_decode, {"99 bytes stored, expected 100"});
}

}  // namespace

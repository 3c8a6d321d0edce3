#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "support/temp_dir.hpp"
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
    ckpt_test::expect_error<ckpt::ArgumentError>([&] { CodecRegistry::instance().register_codec(name, factory); },
                                                 ErrorId::argument_invalid, {"codec name"});
  }
  ckpt_test::expect_error<ckpt::ArgumentError>([] { CodecRegistry::instance().register_codec("nothing", nullptr); },
                                               ErrorId::argument_invalid, {"'nothing'", "without a factory"});
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

// Stores bytes unchanged under its own name, so that its factory can count
// how often a writer or reader asks the registry for it.
class CountedCodec final : public ckpt::Codec {
 public:
  std::string name() const override { return "counted"; }
  void encode(const std::byte* data, std::size_t size, std::size_t element_size,
              std::vector<std::byte>& out) const override {
    raw_.encode(data, size, element_size, out);
  }
  void decode(const std::byte* data, std::size_t size, std::size_t element_size, std::byte* out,
              std::size_t out_size) const override {
    raw_.decode(data, size, element_size, out, out_size);
  }

 private:
  ckpt::RawCodec raw_;
};

TEST(CodecResolution, ASaveAndAReaderMakeEachCodecOnce) {
  static std::atomic<int> made{0};
  CodecRegistry::instance().register_codec("counted", [](const std::string&) {
    ++made;
    return std::make_shared<const CountedCodec>();
  });
  ckpt::test::TempDir dir;
  const std::string path = dir.file("counted.safetensors");
  const std::vector<float> a(300, 1.0f), b(200, 2.0f), c(100, 3.0f);
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy("counted");
  options.chunk_bytes = 256;  // several chunks per tensor
  ckpt::write_checkpoint(path,
                         {{"a", ckpt::TensorView(a.data(), {300})},
                          {"b", ckpt::TensorView(b.data(), {200})},
                          {"c", ckpt::TensorView(c.data(), {100})}},
                         nullptr, options);
  EXPECT_EQ(made.exchange(0), 1) << "a save makes each codec spec once";

  const ckpt::Reader reader(path);
  EXPECT_EQ(made.load(), 0) << "opening makes no codec, so a file with an unknown one still opens";
  EXPECT_EQ(reader.tensor("a").data_as<float>()[299], 1.0f);
  EXPECT_EQ(reader.tensor("b").data_as<float>()[199], 2.0f);
  std::vector<float> c_read(100);
  reader.read_into("c", c_read.data(), c_read.size() * sizeof(float));
  EXPECT_EQ(c_read, c);
  reader.verify();
  EXPECT_EQ(made.load(), 1) << "reading every tensor, twice, made the codec once";

  // Threads racing for a codec nobody asked for yet still make it once.
  made = 0;
  const ckpt::Reader raced(path);
  std::vector<std::thread> readers;
  for (int i = 0; i < 4; ++i) {
    readers.emplace_back([&raced] {
      for (const char* name : {"a", "b", "c"}) raced.tensor(name);
    });
  }
  for (std::thread& thread : readers) thread.join();
  EXPECT_EQ(made.load(), 1) << "four threads reading every tensor made the codec once";
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

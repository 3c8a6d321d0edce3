#include "ckpt/detail/format/chunked.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ckpt/codec.hpp"
#include "test_support.hpp"
#include "xor_codec.hpp"

namespace {

using ckpt::ErrorId;
using ckpt::detail::decode_chunked;
using ckpt::detail::encode_chunked;

std::vector<std::string> all_codec_specs() {
  std::vector<std::string> specs = {"raw"};
#if defined(CKPT_WITH_ZSTD)
  for (const char* spec : {"zstd", "zstd:-5", "zstd:9", "shuffle+zstd", "shuffle+zstd:3"}) specs.emplace_back(spec);
#endif
  return specs;
}

std::vector<std::byte> round_trip(const ckpt::Codec& codec, const std::vector<std::byte>& input, std::size_t width,
                                  std::size_t chunk_bytes, unsigned threads) {
  const auto encoded = encode_chunked(codec, input.data(), input.size(), width, chunk_bytes, threads);
  std::vector<std::byte> output(input.size());
  decode_chunked(codec, encoded.bytes.data(), encoded.bytes.size(), encoded.chunk_sizes, chunk_bytes, width,
                 output.data(), output.size(), threads);
  return output;
}

TEST(Chunked, EveryDtypeRoundTripsThroughEveryCodec) {
  for (const std::string& spec : all_codec_specs()) {
    const auto codec = ckpt::CodecRegistry::instance().make(spec);
    for (ckpt::DType dtype : ckpt::all_dtypes) {
      const std::size_t width = ckpt::dtype_size(dtype);
      const auto input = ckpt_test::tensor_like_bytes(width * 3001, static_cast<std::uint32_t>(dtype));
      EXPECT_EQ(round_trip(*codec, input, width, 1024, 2), input) << spec << " " << ckpt::dtype_name(dtype);
    }
  }
}

TEST(Chunked, SplitsIntoWholeElementChunks) {
  const auto input = ckpt_test::tensor_like_bytes(4 * 1000);
  const ckpt::RawCodec raw;
  // 1001 bytes round down to 250 floats: 1000 bytes per chunk, 4 chunks.
  const auto encoded = encode_chunked(raw, input.data(), input.size(), 4, 1001, 2);
  EXPECT_EQ(encoded.chunk_sizes, (std::vector<std::uint64_t>{1000, 1000, 1000, 1000}));
  EXPECT_EQ(encoded.bytes, input);
  // A chunk smaller than one element still holds one element.
  EXPECT_EQ(encode_chunked(raw, input.data(), 16, 8, 3, 1).chunk_sizes, (std::vector<std::uint64_t>{8, 8}));
}

TEST(Chunked, OddSizesAndChunkBoundariesRoundTrip) {
  for (const std::string& spec : all_codec_specs()) {
    const auto codec = ckpt::CodecRegistry::instance().make(spec);
    for (std::size_t size : {1, 7, 8, 9, 4095, 4096, 4097, 10007}) {
      for (std::size_t chunk_bytes : {1, 5, 64, 1000, 4096, 1 << 20}) {
        // Sizes that are not a whole number of elements still survive.
        const auto input = ckpt_test::tensor_like_bytes(size, static_cast<std::uint32_t>(size ^ chunk_bytes));
        EXPECT_EQ(round_trip(*codec, input, 4, chunk_bytes, 2), input)
            << spec << " size " << size << " chunk " << chunk_bytes;
      }
    }
  }
}

TEST(Chunked, EmptyInputHasNoChunks) {
  for (const std::string& spec : all_codec_specs()) {
    const auto codec = ckpt::CodecRegistry::instance().make(spec);
    const auto encoded = encode_chunked(*codec, nullptr, 0, 4, 1024, 2);
    EXPECT_TRUE(encoded.bytes.empty());
    EXPECT_TRUE(encoded.chunk_sizes.empty());
    decode_chunked(*codec, nullptr, 0, {}, 1024, 4, nullptr, 0, 2);
  }
}

TEST(Chunked, RejectsInvalidChunkOrElementSize) {
  const ckpt::RawCodec raw;
  const std::byte data[4] = {};
  ckpt_test::expect_error<ckpt::ArgumentError>([&] { encode_chunked(raw, data, 4, 4, 0, 1, "f.safetensors", "w"); },
                                               ErrorId::argument_invalid, {"f.safetensors", "'w'", "chunk size 0"});
  std::byte out[4];
  // The chunk table's rule (chunk_table.hpp): a malformed table, as the header parser reports it.
  ckpt_test::expect_error<ckpt::FormatError>(
      [&] { decode_chunked(raw, data, 4, {4}, 1024, 0, out, 4, 1, "f.safetensors", "w"); }, ErrorId::format_metadata,
      {"f.safetensors", "'w'", "positive multiple of the element size 0", "found 0"});
}

TEST(Chunked, UserCodecWorksEndToEnd) {
  ckpt_test::register_xor_codec();
  const auto codec = ckpt::CodecRegistry::instance().make("xor:200");
  const auto input = ckpt_test::tensor_like_bytes(5000);
  const auto encoded = encode_chunked(*codec, input.data(), input.size(), 2, 2000, 2);
  EXPECT_EQ(encoded.chunk_sizes, (std::vector<std::uint64_t>{2001, 2001, 1001}));
  // A reader knows only the recorded name: decode with the codec "xor" builds.
  const auto decoder = ckpt::CodecRegistry::instance().make("xor");
  std::vector<std::byte> output(input.size());
  decode_chunked(*decoder, encoded.bytes.data(), encoded.bytes.size(), encoded.chunk_sizes, 2000, 2, output.data(),
                 output.size(), 2);
  EXPECT_EQ(output, input);
}

// A codec that fails like a buggy user codec: with a non-ckpt exception.
class FailingCodec final : public ckpt::Codec {
 public:
  std::string name() const override { return "failing"; }
  void encode(const std::byte*, std::size_t, std::size_t, std::vector<std::byte>&) const override {
    throw std::runtime_error("out of coffee");
  }
  void decode(const std::byte*, std::size_t, std::size_t, std::byte*, std::size_t) const override {
    throw std::runtime_error("still out of coffee");
  }
};

// A codec that refuses as a codec should: with its own CodecError, which
// knows no file or tensor.
class RefusingCodec final : public ckpt::Codec {
 public:
  std::string name() const override { return "refusing"; }
  void encode(const std::byte*, std::size_t, std::size_t, std::vector<std::byte>&) const override {
    throw ckpt::CodecError(ErrorId::codec_encode, "", "", "refused to encode");
  }
  void decode(const std::byte*, std::size_t, std::size_t, std::byte*, std::size_t) const override {
    throw ckpt::detail::decode_error("refused to decode");
  }
};

TEST(Chunked, ACodecsOwnErrorKeepsItsIdAndWordsAndGainsFileTensorAndChunkOnce) {
  const RefusingCodec refusing;
  const auto input = ckpt_test::tensor_like_bytes(100);
  std::vector<std::byte> out(100);
  const auto expect_once = [](const std::function<void()>& action, ErrorId id, const std::string& message) {
    try {
      action();
      ADD_FAILURE() << "expected " << message;
    } catch (const ckpt::CodecError& error) {
      EXPECT_EQ(error.id(), id);
      EXPECT_EQ(error.file(), "a.safetensors");
      EXPECT_EQ(error.tensor(), "w");
      EXPECT_EQ(error.message(), message);
      const std::string prefix = "[ckpt.codec_error." + std::to_string(static_cast<int>(id)) + "] ";
      EXPECT_EQ(std::string(error.what()), prefix + "file 'a.safetensors': tensor 'w': " + message);
    }
  };
  expect_once([&] { encode_chunked(refusing, input.data(), 100, 1, 40, 1, "a.safetensors", "w"); },
              ErrorId::codec_encode, "codec 'refusing', chunk 0 of 3: refused to encode");
  expect_once(
      [&] { decode_chunked(refusing, input.data(), 100, {100}, 1000, 1, out.data(), 100, 1, "a.safetensors", "w"); },
      ErrorId::codec_decode, "codec 'refusing', chunk 0 of 1: refused to decode");
}

TEST(Chunked, WrapsCodecFailuresNamingFileTensorCodecAndChunk) {
  const FailingCodec failing;
  const auto input = ckpt_test::tensor_like_bytes(100);
  ckpt_test::expect_error<ckpt::CodecError>(
      [&] { encode_chunked(failing, input.data(), 100, 1, 1000, 1, "a.safetensors", "w"); }, ErrorId::codec_encode,
      {"file 'a.safetensors'", "tensor 'w'", "codec 'failing', chunk 0 of 1", "out of coffee"});
  std::vector<std::byte> out(100);
  ckpt_test::expect_error<ckpt::CodecError>(
      [&] { decode_chunked(failing, input.data(), 100, {100}, 1000, 1, out.data(), 100, 1, "a.safetensors", "w"); },
      ErrorId::codec_decode, {"file 'a.safetensors'", "tensor 'w'", "still out of coffee"});
}

class CorruptStream : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    codec = ckpt::CodecRegistry::instance().make(GetParam());
    input = ckpt_test::tensor_like_bytes(4 * 3000);
    encoded = encode_chunked(*codec, input.data(), input.size(), 4, 4096, 2);
    ASSERT_EQ(encoded.chunk_sizes.size(), 3u);
    output.assign(input.size(), std::byte{0});
  }

  void decode(const std::vector<std::byte>& stored, const std::vector<std::uint64_t>& chunk_sizes, std::size_t out_size,
              unsigned threads) {
    decode_chunked(*codec, stored.data(), stored.size(), chunk_sizes, 4096, 4, output.data(), out_size, threads,
                   "model.safetensors", "layer/w");
  }

  // Decodes on one thread, so the first failing chunk is the one the message
  // names, and expects an `Error` with `id` naming the file, the tensor and
  // every fragment.
  template <class Error>
  void expect_refused(const std::vector<std::byte>& stored, const std::vector<std::uint64_t>& chunk_sizes,
                      std::size_t out_size, ErrorId id, std::initializer_list<std::string> fragments) {
    try {
      decode(stored, chunk_sizes, out_size, 1);
      ADD_FAILURE() << "corrupt stream accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.id(), id);
      EXPECT_EQ(error.file(), "model.safetensors");
      EXPECT_EQ(error.tensor(), "layer/w");
      for (const std::string& fragment : fragments) {
        EXPECT_NE(error.message().find(fragment), std::string::npos) << error.what() << " / " << fragment;
      }
    }
  }

  // A chunk table that breaks the rule is refused before any chunk is
  // decoded, with the header parser's error.
  void expect_table_refused(const std::vector<std::uint64_t>& chunk_sizes, std::size_t out_size,
                            std::initializer_list<std::string> fragments) {
    expect_refused<ckpt::FormatError>(encoded.bytes, chunk_sizes, out_size, ErrorId::format_metadata, fragments);
  }

  void expect_rejected(const std::vector<std::byte>& stored, const std::vector<std::uint64_t>& chunk_sizes,
                       std::size_t out_size, std::initializer_list<std::string> fragments) {
    expect_refused<ckpt::CodecError>(stored, chunk_sizes, out_size, ErrorId::codec_decode, fragments);
  }

  std::shared_ptr<const ckpt::Codec> codec;
  std::vector<std::byte> input, output;
  ckpt::detail::EncodedTensor encoded;
};

TEST_P(CorruptStream, ChunkSizesThatDoNotAddUpAreRejected) {
  const std::string stored = std::to_string(encoded.bytes.size());
  auto sizes = encoded.chunk_sizes;
  sizes[1] += 1;
  expect_table_refused(sizes, input.size(), {"adding up to the " + stored + " stored bytes, found more"});
  sizes = encoded.chunk_sizes;
  sizes[2] -= 1;
  expect_table_refused(
      sizes, input.size(),
      {"adding up to the " + stored + " stored bytes, found " + std::to_string(encoded.bytes.size() - 1)});
  sizes = encoded.chunk_sizes;
  sizes[0] = ~std::uint64_t(0);  // would overflow a naive sum
  expect_table_refused(sizes, input.size(), {"found more"});
}

TEST_P(CorruptStream, WrongChunkCountIsRejected) {
  auto sizes = encoded.chunk_sizes;
  sizes.push_back(0);
  expect_table_refused(sizes, input.size(), {"expected 3 chunk sizes for 12000 bytes in chunks of 4096, found 4"});
  // Claiming a larger tensor than the chunks hold.
  expect_table_refused(encoded.chunk_sizes, input.size() + 4096, {"expected 4 chunk sizes", "found 3"});
}

TEST_P(CorruptStream, TruncatedChunksAreRejected) {
  // Give the tail of chunk 0 to chunk 2 so the sizes still add up.
  const auto& stored = encoded.bytes;
  const auto& sizes = encoded.chunk_sizes;
  for (std::uint64_t cut : {std::uint64_t(1), sizes[0] / 2, sizes[0] - 1}) {
    auto shortened = encoded.chunk_sizes;
    shortened[0] -= cut;
    shortened[2] += cut;
    expect_rejected(stored, shortened, input.size(), {"chunk 0 of 3"});
  }
}

TEST_P(CorruptStream, ExactSizeIsRequired) {
  // One element less than the stream holds: the last chunk decodes to more.
  std::vector<std::byte> stored = encoded.bytes;
  expect_rejected(stored, encoded.chunk_sizes, input.size() - 4, {"chunk 2 of 3"});
}

TEST_P(CorruptStream, GarbageIsRejected) {
  if (GetParam() == "raw") GTEST_SKIP() << "raw bytes have no structure to check";
  std::vector<std::byte> garbage(encoded.bytes.size(), std::byte{0xAB});
  expect_rejected(garbage, encoded.chunk_sizes, input.size(), {"chunk "});
}

TEST_P(CorruptStream, AnySingleByteChangeNeverCrashesOrOverruns) {
  // Under ASan this proves decoding stays inside its buffers; zstd cannot
  // notice every change (the file checksum does), so either outcome is fine.
  std::vector<std::byte> stored = encoded.bytes;
  const std::size_t step = std::max<std::size_t>(1, stored.size() / 512);
  for (std::size_t position = 0; position < stored.size(); position += step) {
    stored[position] ^= std::byte{0x5c};
    try {
      decode(stored, encoded.chunk_sizes, input.size(), 2);
    } catch (const ckpt::CodecError& error) {
      EXPECT_EQ(error.id(), ErrorId::codec_decode);
    }
    stored[position] ^= std::byte{0x5c};
  }
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CorruptStream, ::testing::ValuesIn(all_codec_specs()), [](const auto& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
});

#if defined(CKPT_WITH_ZSTD)
TEST(ZstdCodec, RejectsFramesWhoseContentSizeDiffers) {
  const ckpt::ZstdCodec zstd;
  const auto input = ckpt_test::tensor_like_bytes(1000);
  std::vector<std::byte> frame;
  zstd.encode(input.data(), input.size(), 1, frame);
  std::vector<std::byte> out(2000);
  ckpt_test::expect_error<ckpt::CodecError>([&] { zstd.decode(frame.data(), frame.size(), 1, out.data(), 2000); },
                                            ErrorId::codec_decode, {"frame holds 1000 bytes, expected 2000"});
  std::vector<std::byte> two_frames = frame;
  two_frames.insert(two_frames.end(), frame.begin(), frame.end());
  ckpt_test::expect_error<ckpt::CodecError>(
      [&] { zstd.decode(two_frames.data(), two_frames.size(), 1, out.data(), 1000); }, ErrorId::codec_decode,
      {"unexpected bytes after"});
  ckpt_test::expect_error<ckpt::CodecError>([&] { zstd.decode(frame.data(), 3, 1, out.data(), 1000); },
                                            ErrorId::codec_decode, {"not a zstd frame"});
}

TEST(ZstdCodec, ShuffleHelpsOnFloats) {
  // Weights-like float32 values: the shuffled stream must be clearly smaller.
  std::mt19937 random(7);
  std::normal_distribution<float> gaussian(0.0f, 0.02f);
  std::vector<float> values(100000);
  for (float& value : values) value = gaussian(random);
  const auto* bytes = reinterpret_cast<const std::byte*>(values.data());
  std::vector<std::byte> plain, shuffled;
  ckpt::ZstdCodec(1, false).encode(bytes, values.size() * 4, 4, plain);
  ckpt::ZstdCodec(1, true).encode(bytes, values.size() * 4, 4, shuffled);
  EXPECT_LT(static_cast<double>(shuffled.size()), 0.95 * static_cast<double>(plain.size()));
}
#endif

}  // namespace

namespace {

TEST(ScratchLoan, KeepsChunkSizedBuffersAndReleasesHugeOnes) {
  std::vector<std::byte> buffer;
  {
    ckpt::detail::ScratchLoan loan(buffer);
    loan.data(4 << 20);
  }
  EXPECT_GE(buffer.capacity(), std::size_t(4) << 20);  // reused by the next chunk
  {
    ckpt::detail::ScratchLoan loan(buffer);
    EXPECT_TRUE(loan.emptied().empty());
    loan.emptied().reserve(ckpt::detail::ScratchLoan::max_kept_bytes + 1);
  }
  EXPECT_EQ(buffer.capacity(), 0u);
}

}  // namespace

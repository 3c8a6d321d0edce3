#pragma once

// The zstd codecs: "zstd[:LEVEL]" and "shuffle+zstd[:LEVEL]". The only ckpt
// header that includes <zstd.h>; codecs/registry.hpp registers them when the
// build defines CKPT_WITH_ZSTD (the ckpt::ckpt CMake target does, and links zstd).

#include <zstd.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/detail/codec/scratch.hpp"
#include "ckpt/detail/codec/shuffle.hpp"
#include "ckpt/detail/text.hpp"

namespace ckpt {

namespace detail {

// Contexts hold zstd's tables and buffers; creating one per chunk would cost
// more than compressing a small chunk, so each thread keeps one. (Owned by a
// plain class rather than a std::unique_ptr with a deleter, whose templates
// every translation unit would otherwise instantiate.)
template <class Context, std::size_t (*free_context)(Context*)>
class ZstdThreadContext {
 public:
  explicit ZstdThreadContext(Context* context) noexcept : context_(context) {}
  ZstdThreadContext(const ZstdThreadContext&) = delete;
  ZstdThreadContext& operator=(const ZstdThreadContext&) = delete;
  ~ZstdThreadContext() { free_context(context_); }
  Context* get() const noexcept { return context_; }

 private:
  Context* context_;
};

inline ZSTD_CCtx* thread_zstd_compressor() {
  thread_local const ZstdThreadContext<ZSTD_CCtx, ZSTD_freeCCtx> context(ZSTD_createCCtx());
  if (!context.get()) throw CodecError(ErrorId::codec_encode, "", "", "zstd: cannot create a compression context");
  return context.get();
}

inline ZSTD_DCtx* thread_zstd_decompressor() {
  thread_local const ZstdThreadContext<ZSTD_DCtx, ZSTD_freeDCtx> context(ZSTD_createDCtx());
  if (!context.get()) throw decode_error("zstd: cannot create a decompression context");
  return context.get();
}

// Room for one shuffled chunk, reused by the thread's next chunk.
inline std::vector<std::byte>& thread_shuffle_buffer() {
  thread_local std::vector<std::byte> buffer;
  return buffer;
}

// Decodes one zstd frame of exactly `out_size` bytes. Single-shot
// decompression writes straight into `out` and never allocates a window, so a
// hostile frame header cannot make it allocate or write beyond `out_size`.
inline void zstd_decompress_exact(const std::byte* data, std::size_t size, std::byte* out, std::size_t out_size) {
  const unsigned long long content_size = ZSTD_getFrameContentSize(data, size);
  if (content_size == ZSTD_CONTENTSIZE_ERROR) {
    throw decode_error(join({"zstd: not a zstd frame (", size, " bytes, bad magic or truncated header)"}));
  }
  if (content_size != ZSTD_CONTENTSIZE_UNKNOWN && content_size != out_size) {
    throw decode_error(join({"zstd: frame holds ", content_size, " bytes, expected ", out_size}));
  }
  const std::size_t frame_size = ZSTD_findFrameCompressedSize(data, size);
  if (ZSTD_isError(frame_size)) {
    throw decode_error(join({"zstd: corrupt or truncated frame: ", ZSTD_getErrorName(frame_size)}));
  }
  if (frame_size != size) {
    throw decode_error(join({"zstd: ", size - frame_size, " unexpected bytes after the ", frame_size, "-byte frame"}));
  }
  const std::size_t decoded = ZSTD_decompressDCtx(thread_zstd_decompressor(), out, out_size, data, size);
  if (ZSTD_isError(decoded)) throw decode_error(join({"zstd: ", ZSTD_getErrorName(decoded)}));
  if (decoded != out_size) {
    throw decode_error(join({"zstd: frame decoded to ", decoded, " bytes, expected ", out_size}));
  }
}

}  // namespace detail

// zstd, optionally after a byte shuffle by element width ("shuffle+zstd").
// Each chunk is one standard zstd frame that records its content size, so any
// zstd tool decodes it (the shuffled variant then needs an unshuffle).
class ZstdCodec final : public Codec {
 public:
  // On model weights level 1 compresses as well as level 3 (better, after
  // the shuffle) and faster; figures in docs/codecs.md.
  static constexpr int default_level = 1;

  // Shuffled weights are near-random mantissa planes plus low-entropy
  // exponent planes: the gain comes from entropy coding, not from matches.
  // zstd's smallest match table (2^6 entries) stops it chasing chance matches:
  // on Gaussian weights it is faster and compresses slightly better, and it
  // helps sparse and quantised tensors too (docs/codecs.md).
  static constexpr int shuffled_hash_log = 6;

  explicit ZstdCodec(int level = default_level, bool shuffle = false) : level_(level), shuffle_(shuffle) {
    if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel()) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          detail::join({"codec '", name(), "': level ", level, " is outside [", ZSTD_minCLevel(), ", ",
                                        ZSTD_maxCLevel(), "]"}));
    }
  }

  // Builds from the parameter part of "zstd:LEVEL" (empty: default level). A
  // template only so that programs that never look a codec up do not compile
  // it (see "Compile time" in docs/architecture.md).
  template <class = void>
  static std::shared_ptr<const Codec> from_parameters(const std::string& parameters, bool shuffle) {
    int level = default_level;
    if (!parameters.empty()) {
      // An optional '-' and at most 9 digits, so that std::stoi neither skips
      // text nor overflows (and <charconv> stays out of every program).
      const std::size_t sign = parameters[0] == '-' ? 1 : 0;
      const bool integer = parameters.size() > sign && parameters.size() - sign <= 9 &&
                           parameters.find_first_not_of("0123456789", sign) == std::string::npos;
      if (!integer) {
        throw ArgumentError(
            ErrorId::argument_invalid, "", "",
            detail::join({"codec '", name_for(shuffle), "': level must be an integer, found '", parameters, "'"}));
      }
      level = std::stoi(parameters);
    }
    return std::make_shared<const ZstdCodec>(level, shuffle);
  }

  static std::string name_for(bool shuffle) { return shuffle ? "shuffle+zstd" : "zstd"; }
  std::string name() const override { return name_for(shuffle_); }
  int level() const noexcept { return level_; }
  bool shuffles() const noexcept { return shuffle_; }

  void encode(const std::byte* data, std::size_t size, std::size_t element_size,
              std::vector<std::byte>& out) const override {
    detail::ScratchLoan scratch(detail::thread_shuffle_buffer());
    const std::byte* source = data;
    if (shuffles_width(element_size)) {
      std::byte* shuffled = scratch.data(size);
      detail::shuffle_bytes(data, shuffled, size, element_size);
      source = shuffled;
    }
    ZSTD_CCtx* context = detail::thread_zstd_compressor();
    check_encode(ZSTD_CCtx_reset(context, ZSTD_reset_session_and_parameters));
    check_encode(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level_));
    if (shuffle_) check_encode(ZSTD_CCtx_setParameter(context, ZSTD_c_hashLog, shuffled_hash_log));
    const std::size_t start = out.size();
    const std::size_t bound = ZSTD_compressBound(size);
    out.resize(start + bound);
    // compress2 records the content size in the frame header, which decoders
    // (ckpt's and python-zstandard's) rely on.
    const std::size_t written = ZSTD_compress2(context, out.data() + start, bound, source, size);
    if (ZSTD_isError(written)) out.resize(start);
    check_encode(written);
    out.resize(start + written);
  }

  void decode(const std::byte* data, std::size_t size, std::size_t element_size, std::byte* out,
              std::size_t out_size) const override {
    if (!shuffles_width(element_size)) {
      detail::zstd_decompress_exact(data, size, out, out_size);
      return;
    }
    detail::ScratchLoan scratch(detail::thread_shuffle_buffer());
    std::byte* shuffled = scratch.data(out_size);
    detail::zstd_decompress_exact(data, size, shuffled, out_size);
    detail::unshuffle_bytes(shuffled, out, out_size, element_size);
  }

 private:
  static void check_encode(std::size_t result) {
    if (ZSTD_isError(result)) {
      throw CodecError(ErrorId::codec_encode, "", "", detail::join({"zstd: ", ZSTD_getErrorName(result)}));
    }
  }

  // Shuffling single bytes changes nothing; skip the copy.
  bool shuffles_width(std::size_t element_size) const noexcept { return shuffle_ && element_size > 1; }

  int level_;
  bool shuffle_;
};

}  // namespace ckpt

#pragma once

#include <cstddef>
#include <cstring>

// The SSE2 transpose is written with GCC's vector extensions rather than
// <emmintrin.h>'s intrinsics, a header that cost every translation unit that
// includes ckpt 0.08 G of the compiler's instructions.
#if defined(__SSE2__) && (defined(__GNUC__) || defined(__clang__))
#define CKPT_SHUFFLE_SSE2 1
#endif

namespace ckpt::detail {

// Byte shuffle: groups byte k of every element into plane k (all first bytes,
// then all second bytes, ...). Exponent and sign bytes of neighbouring weights
// are alike, so the planes holding them compress far better than interleaved
// bytes. Trailing bytes that do not make a whole element are copied unchanged
// after the planes.

// Moves element e's byte k (at e * Width + k) to k * count + e (Forward), or back.
template <bool Forward>
void transpose_bytes_scalar(const std::byte* in, std::byte* out, std::size_t width, std::size_t count,
                            std::size_t first) {
  for (std::size_t e = first; e < count; ++e) {
    for (std::size_t k = 0; k < width; ++k) {
      if constexpr (Forward) {
        out[k * count + e] = in[e * width + k];
      } else {
        out[e * width + k] = in[k * count + e];
      }
    }
  }
}

#ifdef CKPT_SHUFFLE_SSE2
typedef unsigned char ShuffleBytes __attribute__((vector_size(16)));

// The bytes of the low (Half 0: punpcklbw) or high (Half 8: punpckhbw)
// halves of a and b, interleaved, a first.
template <int Half>
inline ShuffleBytes interleave(ShuffleBytes a, ShuffleBytes b) {
#if defined(__clang__)
  return __builtin_shufflevector(a, b, Half, Half + 16, Half + 1, Half + 17, Half + 2, Half + 18, Half + 3, Half + 19,
                                 Half + 4, Half + 20, Half + 5, Half + 21, Half + 6, Half + 22, Half + 7, Half + 23);
#else
  return __builtin_shuffle(
      a, b,
      ShuffleBytes{Half, Half + 16, Half + 1, Half + 17, Half + 2, Half + 18, Half + 3, Half + 19, Half + 4, Half + 20,
                   Half + 5, Half + 21, Half + 6, Half + 22, Half + 7, Half + 23});
#endif
}

// Blocks of 16 elements live in Width registers; a byte's position in a block
// is a (log2(Width) + 4)-bit address: register index, then offset. One round of
// unpacklo/unpackhi on register pairs (q, q + Width/2) rotates that address
// left by one bit. Shuffling maps address [element | byte] to [byte | element],
// a rotation by 4 bits (4 rounds); unshuffling rotates by log2(Width) bits.
template <std::size_t Width, int Rounds>
inline void rotate_block_address(ShuffleBytes (&regs)[Width]) {
  for (int round = 0; round < Rounds; ++round) {
    ShuffleBytes next[Width];
    for (std::size_t q = 0; q < Width / 2; ++q) {
      next[2 * q] = interleave<0>(regs[q], regs[q + Width / 2]);
      next[2 * q + 1] = interleave<8>(regs[q], regs[q + Width / 2]);
    }
    for (std::size_t r = 0; r < Width; ++r) regs[r] = next[r];
  }
}

template <std::size_t Width, bool Forward>
void transpose_bytes_simd(const std::byte* in, std::byte* out, std::size_t count) {
  constexpr int log2_width = Width == 2 ? 1 : Width == 4 ? 2 : 3;
  const std::size_t blocks = count / 16;
  for (std::size_t block = 0; block < blocks; ++block) {
    const std::size_t e = block * 16;
    ShuffleBytes regs[Width];
    for (std::size_t r = 0; r < Width; ++r) {
      const std::byte* from = Forward ? in + e * Width + r * 16 : in + r * count + e;
      std::memcpy(&regs[r], from, 16);
    }
    rotate_block_address<Width, Forward ? 4 : log2_width>(regs);
    for (std::size_t r = 0; r < Width; ++r) {
      std::byte* to = Forward ? out + r * count + e : out + e * Width + r * 16;
      std::memcpy(to, &regs[r], 16);
    }
  }
  transpose_bytes_scalar<Forward>(in, out, Width, count, blocks * 16);
}
#endif

template <bool Forward>
void transpose_bytes(const std::byte* in, std::byte* out, std::size_t size, std::size_t element_size) {
  if (element_size <= 1) {
    if (size != 0) std::memcpy(out, in, size);
    return;
  }
  const std::size_t count = size / element_size;
  switch (element_size) {
#ifdef CKPT_SHUFFLE_SSE2
    case 2: transpose_bytes_simd<2, Forward>(in, out, count); break;
    case 4: transpose_bytes_simd<4, Forward>(in, out, count); break;
    case 8: transpose_bytes_simd<8, Forward>(in, out, count); break;
#endif
    default: transpose_bytes_scalar<Forward>(in, out, element_size, count, 0);
  }
  const std::size_t whole = count * element_size;
  if (size > whole) std::memcpy(out + whole, in + whole, size - whole);
}

// `in` and `out` hold `size` bytes each and must not overlap.
inline void shuffle_bytes(const std::byte* in, std::byte* out, std::size_t size, std::size_t element_size) {
  transpose_bytes<true>(in, out, size, element_size);
}

inline void unshuffle_bytes(const std::byte* in, std::byte* out, std::size_t size, std::size_t element_size) {
  transpose_bytes<false>(in, out, size, element_size);
}

}  // namespace ckpt::detail

#pragma once

#include <cstddef>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
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

#if defined(__SSE2__)
// Blocks of 16 elements live in Width registers; a byte's position in a block
// is a (log2(Width) + 4)-bit address: register index, then offset. One round of
// unpacklo/unpackhi on register pairs (q, q + Width/2) rotates that address
// left by one bit. Shuffling maps address [element | byte] to [byte | element],
// a rotation by 4 bits (4 rounds); unshuffling rotates by log2(Width) bits.
template <std::size_t Width, int Rounds>
inline void rotate_block_address(__m128i (&regs)[Width]) {
  for (int round = 0; round < Rounds; ++round) {
    __m128i next[Width];
    for (std::size_t q = 0; q < Width / 2; ++q) {
      next[2 * q] = _mm_unpacklo_epi8(regs[q], regs[q + Width / 2]);
      next[2 * q + 1] = _mm_unpackhi_epi8(regs[q], regs[q + Width / 2]);
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
    __m128i regs[Width];
    for (std::size_t r = 0; r < Width; ++r) {
      const std::byte* from = Forward ? in + e * Width + r * 16 : in + r * count + e;
      regs[r] = _mm_loadu_si128(reinterpret_cast<const __m128i*>(from));
    }
    rotate_block_address<Width, Forward ? 4 : log2_width>(regs);
    for (std::size_t r = 0; r < Width; ++r) {
      std::byte* to = Forward ? out + r * count + e : out + e * Width + r * 16;
      _mm_storeu_si128(reinterpret_cast<__m128i*>(to), regs[r]);
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
#if defined(__SSE2__)
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

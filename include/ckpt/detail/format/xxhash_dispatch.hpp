#pragma once

// xxHash, header-only (XXH_INLINE_ALL: every function is inlined into the
// including translation unit, so nothing needs to be linked), with XXH3's
// long-input loop chosen at run time on x86-64: AVX2 where the CPU has it,
// else SSE2, the loop a default build compiles. A save hashes every byte of
// the state (checksums; an incremental save also the content hash of every
// tensor, its floor), and a default build, made for any x86-64, would never
// use AVX2: measured here, AVX2 hashes 512 MiB in 0.13 s against xxHash's
// SSE2 loop's 0.19 s. The results are the same bits whichever loop runs (XXH3 is
// defined by its output, and xxHash's own dispatcher does the same).
//
// The dispatch calls xxHash internals of 0.8.1 (the version the build's
// packages ship); with another version, a compiler without target
// attributes, or xxhash.h included earlier in the translation unit, the
// plain functions run, as compiled.
//
// Both loops are written with GCC's vector extensions and one builtin each
// rather than with xxHash's intrinsics, since those need <immintrin.h>, which
// alone cost every translation unit that includes ckpt 2.3 G of the
// compiler's instructions (more than a fifth of <ckpt/ckpt.hpp>'s), and
// <emmintrin.h> 0.08 G. xxHash then compiles its scalar loop (XXH_VECTOR),
// which only the last partial block of a stream runs; and as its header
// includes <emmintrin.h> with SSE2 whatever loop it compiles, that header's
// include guard is set around it (unless it was included already).

#include <cstddef>
#include <cstdint>

// Whether this include brings xxHash's internals, which the loops call.
#if !defined(XXH_IMPLEM_13a8737387)
#define CKPT_XXH3_INTERNALS_HERE 1
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__AVX2__) && \
    defined(CKPT_XXH3_INTERNALS_HERE)
#define CKPT_XXH3_DISPATCH 1
#if !defined(XXH_VECTOR) && !defined(XXH_INLINE_ALL)
// The declarations alone, for the version (xxhash.h is made to be included
// again with XXH_INLINE_ALL).
#include <xxhash.h>
#if XXH_VERSION_NUMBER == 801
#define CKPT_XXH3_SSE2 1
#define XXH_VECTOR 0  // XXH_SCALAR
#if defined(__clang__) && !defined(__EMMINTRIN_H)
#define __EMMINTRIN_H
#define CKPT_XXH3_EMMINTRIN_SKIPPED 1
#elif !defined(__clang__) && !defined(_EMMINTRIN_H_INCLUDED)
#define _EMMINTRIN_H_INCLUDED
#define CKPT_XXH3_EMMINTRIN_SKIPPED 1
#endif
#endif
#endif
#endif

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#ifdef CKPT_XXH3_EMMINTRIN_SKIPPED
#undef __EMMINTRIN_H
#undef _EMMINTRIN_H_INCLUDED
#endif

#if defined(CKPT_XXH3_DISPATCH) && XXH_VERSION_NUMBER == 801
#define CKPT_XXH3_AVX2 1
#endif

namespace ckpt::detail {

#ifdef CKPT_XXH3_AVX2
inline bool cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

// Four 64-bit lanes, at any address (aligned(1)): xxHash's input and secret
// are not aligned.
typedef std::uint64_t Xxh3Lanes __attribute__((vector_size(32), aligned(1)));
typedef int Xxh3Halves __attribute__((vector_size(32)));

// The low 32 bits of each lane of a times those of b, as 64-bit lanes (vpmuludq).
__attribute__((target("avx2"), always_inline)) inline Xxh3Lanes multiply_low_halves(Xxh3Lanes a, Xxh3Lanes b) noexcept {
  return reinterpret_cast<Xxh3Lanes>(
      __builtin_ia32_pmuludq256(reinterpret_cast<Xxh3Halves>(a), reinterpret_cast<Xxh3Halves>(b)));
}

// XXH3's accumulation of one 64-byte stripe, two 256-bit halves at a time:
// acc += swap of each lane pair of the data, + low(data ^ key) * high(data ^ key).
__attribute__((target("avx2"), always_inline)) inline void xxh3_accumulate_avx2(void* XXH_RESTRICT acc,
                                                                                const void* XXH_RESTRICT input,
                                                                                const void* XXH_RESTRICT secret) {
  Xxh3Lanes* lanes = static_cast<Xxh3Lanes*>(acc);
  const Xxh3Lanes* data = static_cast<const Xxh3Lanes*>(input);
  const Xxh3Lanes* key = static_cast<const Xxh3Lanes*>(secret);
  for (int half = 0; half < 2; ++half) {
    const Xxh3Lanes value = data[half];
    const Xxh3Lanes mixed = value ^ key[half];
    lanes[half] += Xxh3Lanes{value[1], value[0], value[3], value[2]} + multiply_low_halves(mixed, mixed >> 32);
  }
}

// XXH3's scramble of the accumulators: acc = (acc ^ (acc >> 47) ^ key) * PRIME32_1.
__attribute__((target("avx2"), always_inline)) inline void xxh3_scramble_avx2(void* XXH_RESTRICT acc,
                                                                              const void* XXH_RESTRICT secret) {
  Xxh3Lanes* lanes = static_cast<Xxh3Lanes*>(acc);
  const Xxh3Lanes* key = static_cast<const Xxh3Lanes*>(secret);
  const Xxh3Lanes prime = {XXH_PRIME32_1, XXH_PRIME32_1, XXH_PRIME32_1, XXH_PRIME32_1};
  for (int half = 0; half < 2; ++half) {
    const Xxh3Lanes mixed = lanes[half] ^ (lanes[half] >> 47) ^ key[half];
    lanes[half] = multiply_low_halves(mixed, prime) + (multiply_low_halves(mixed >> 32, prime) << 32);
  }
}

// The AVX2 loops (inputs longer than XXH3_MIDSIZE_MAX, which take the long
// path in XXH3_64bits and XXH3_128bits too).
__attribute__((target("avx2"))) inline XXH64_hash_t xxh3_64_long_avx2(const void* data, std::size_t size) noexcept {
  return XXH3_hashLong_64b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_accumulate_avx2,
                                    xxh3_scramble_avx2);
}

__attribute__((target("avx2"))) inline XXH128_hash_t xxh3_128_long_avx2(const void* data, std::size_t size) noexcept {
  return XXH3_hashLong_128b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_accumulate_avx2,
                                     xxh3_scramble_avx2);
}

__attribute__((target("avx2"))) inline void xxh3_update_avx2(XXH3_state_t* state, const void* data,
                                                             std::size_t size) noexcept {
  XXH3_update(state, static_cast<const xxh_u8*>(data), size, xxh3_accumulate_avx2, xxh3_scramble_avx2);
}
#endif

#ifdef CKPT_XXH3_SSE2
// The same loops in SSE2, which every x86-64 CPU has: two 64-bit lanes, four
// 128-bit quarters a stripe.
typedef std::uint64_t Xxh3LanesSse2 __attribute__((vector_size(16), aligned(1)));
typedef int Xxh3HalvesSse2 __attribute__((vector_size(16)));

// The low 32 bits of each lane of a times those of b, as 64-bit lanes (pmuludq).
__attribute__((always_inline)) inline Xxh3LanesSse2 multiply_low_halves(Xxh3LanesSse2 a, Xxh3LanesSse2 b) noexcept {
  return reinterpret_cast<Xxh3LanesSse2>(
      __builtin_ia32_pmuludq128(reinterpret_cast<Xxh3HalvesSse2>(a), reinterpret_cast<Xxh3HalvesSse2>(b)));
}

__attribute__((always_inline)) inline void xxh3_accumulate_sse2(void* XXH_RESTRICT acc, const void* XXH_RESTRICT input,
                                                                const void* XXH_RESTRICT secret) {
  Xxh3LanesSse2* lanes = static_cast<Xxh3LanesSse2*>(acc);
  const Xxh3LanesSse2* data = static_cast<const Xxh3LanesSse2*>(input);
  const Xxh3LanesSse2* key = static_cast<const Xxh3LanesSse2*>(secret);
  // Unrolled: as a loop (what g++ -O2 leaves), 10% slower than xxHash's.
#pragma GCC unroll 4
  for (int quarter = 0; quarter < 4; ++quarter) {
    const Xxh3LanesSse2 value = data[quarter];
    const Xxh3LanesSse2 mixed = value ^ key[quarter];
    lanes[quarter] += Xxh3LanesSse2{value[1], value[0]} + multiply_low_halves(mixed, mixed >> 32);
  }
}

__attribute__((always_inline)) inline void xxh3_scramble_sse2(void* XXH_RESTRICT acc, const void* XXH_RESTRICT secret) {
  Xxh3LanesSse2* lanes = static_cast<Xxh3LanesSse2*>(acc);
  const Xxh3LanesSse2* key = static_cast<const Xxh3LanesSse2*>(secret);
  const Xxh3LanesSse2 prime = {XXH_PRIME32_1, XXH_PRIME32_1};
#pragma GCC unroll 4
  for (int quarter = 0; quarter < 4; ++quarter) {
    const Xxh3LanesSse2 mixed = lanes[quarter] ^ (lanes[quarter] >> 47) ^ key[quarter];
    lanes[quarter] = multiply_low_halves(mixed, prime) + (multiply_low_halves(mixed >> 32, prime) << 32);
  }
}

// In the signature of xxHash's long paths (seed and secret its defaults), for
// its dispatch on length: xxHash's own functions, whose long paths are its
// scalar loop here, are then not compiled, which a program at -O2 paid 0.4 G
// of the compiler's instructions for.
inline XXH64_hash_t xxh3_64_long_sse2(const void* data, std::size_t size, XXH64_hash_t, const xxh_u8*,
                                      std::size_t) noexcept {
  return XXH3_hashLong_64b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_accumulate_sse2,
                                    xxh3_scramble_sse2);
}

inline XXH128_hash_t xxh3_128_long_sse2(const void* data, std::size_t size, XXH64_hash_t, const void*,
                                        std::size_t) noexcept {
  return XXH3_hashLong_128b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_accumulate_sse2,
                                     xxh3_scramble_sse2);
}

inline void xxh3_update_sse2(XXH3_state_t* state, const void* data, std::size_t size) noexcept {
  XXH3_update(state, static_cast<const xxh_u8*>(data), size, xxh3_accumulate_sse2, xxh3_scramble_sse2);
}
#endif

// XXH3-64 (seed 0).
inline XXH64_hash_t xxh3_64_dispatched(const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (size > XXH3_MIDSIZE_MAX && cpu_has_avx2()) return xxh3_64_long_avx2(data, size);
#endif
#ifdef CKPT_XXH3_SSE2
  return XXH3_64bits_internal(data, size, 0, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_64_long_sse2);
#else
  return XXH3_64bits(data, size);
#endif
}

// XXH3-128 (seed 0).
inline XXH128_hash_t xxh3_128_dispatched(const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (size > XXH3_MIDSIZE_MAX && cpu_has_avx2()) return xxh3_128_long_avx2(data, size);
#endif
#ifdef CKPT_XXH3_SSE2
  return XXH3_128bits_internal(data, size, 0, XXH3_kSecret, sizeof(XXH3_kSecret), xxh3_128_long_sse2);
#else
  return XXH3_128bits(data, size);
#endif
}

// XXH3_64bits_update.
inline void xxh3_64_update_dispatched(XXH3_state_t* state, const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (cpu_has_avx2()) return xxh3_update_avx2(state, data, size);
#endif
#ifdef CKPT_XXH3_SSE2
  xxh3_update_sse2(state, data, size);
#else
  XXH3_64bits_update(state, data, size);
#endif
}

}  // namespace ckpt::detail

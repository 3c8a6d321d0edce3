#pragma once

// xxHash, header-only (XXH_INLINE_ALL: every function is inlined into the
// including translation unit, so nothing needs to be linked), with XXH3's
// long-input loop chosen at run time on x86-64: AVX2 where the CPU has it,
// else the SSE2 loop a default build compiles. A save hashes every byte of
// the state (checksums; an incremental save also the content hash of every
// tensor, its floor), and a default build, made for any x86-64, would never
// use AVX2: measured here, AVX2 hashes 512 MiB in 0.13 s against SSE2's
// 0.19 s. The results are the same bits whichever loop runs (XXH3 is
// defined by its output, and xxHash's own dispatcher does the same).
//
// The dispatch calls xxHash internals of 0.8.1 (the version the build's
// packages ship); with another version, a compiler without target
// attributes, or xxhash.h included earlier in the translation unit without
// these settings, the plain functions run, as compiled.

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(__AVX2__) && \
    !defined(XXH_IMPLEM_13a8737387)
#include <immintrin.h>
// Compiles XXH3's AVX2 loop next to the default one, for AVX2 targets only.
#define XXH_X86DISPATCH
#define XXH_DISPATCH_AVX2 1
#define XXH_TARGET_AVX2 __attribute__((target("avx2")))
#define CKPT_XXH3_AVX2_COMPILED 1
#endif

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#if defined(CKPT_XXH3_AVX2_COMPILED) && XXH_VERSION_NUMBER == 801
#define CKPT_XXH3_AVX2 1
#endif

namespace ckpt::detail {

#ifdef CKPT_XXH3_AVX2
inline bool cpu_has_avx2() noexcept {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

// The AVX2 loops (inputs longer than XXH3_MIDSIZE_MAX, which take the long
// path in XXH3_64bits and XXH3_128bits too).
__attribute__((target("avx2"))) inline XXH64_hash_t xxh3_64_long_avx2(const void* data, std::size_t size) noexcept {
  return XXH3_hashLong_64b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), XXH3_accumulate_512_avx2,
                                    XXH3_scrambleAcc_avx2);
}

__attribute__((target("avx2"))) inline XXH128_hash_t xxh3_128_long_avx2(const void* data, std::size_t size) noexcept {
  return XXH3_hashLong_128b_internal(data, size, XXH3_kSecret, sizeof(XXH3_kSecret), XXH3_accumulate_512_avx2,
                                     XXH3_scrambleAcc_avx2);
}

__attribute__((target("avx2"))) inline void xxh3_update_avx2(XXH3_state_t* state, const void* data,
                                                             std::size_t size) noexcept {
  XXH3_update(state, static_cast<const xxh_u8*>(data), size, XXH3_accumulate_512_avx2, XXH3_scrambleAcc_avx2);
}
#endif

// XXH3-64 (seed 0).
inline XXH64_hash_t xxh3_64_dispatched(const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (size > XXH3_MIDSIZE_MAX && cpu_has_avx2()) return xxh3_64_long_avx2(data, size);
#endif
  return XXH3_64bits(data, size);
}

// XXH3-128 (seed 0).
inline XXH128_hash_t xxh3_128_dispatched(const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (size > XXH3_MIDSIZE_MAX && cpu_has_avx2()) return xxh3_128_long_avx2(data, size);
#endif
  return XXH3_128bits(data, size);
}

// XXH3_64bits_update.
inline void xxh3_64_update_dispatched(XXH3_state_t* state, const void* data, std::size_t size) noexcept {
#ifdef CKPT_XXH3_AVX2
  if (cpu_has_avx2()) return xxh3_update_avx2(state, data, size);
#endif
  XXH3_64bits_update(state, data, size);
}

}  // namespace ckpt::detail

// Every fuzz target of fuzz_targets.hpp compiled once, with libFuzzer's
// coverage instrumentation, for all the *_fuzzer executables
// (cmake/ckptFuzz.cmake): each executable is fuzzer_main.cpp calling one of
// these. Compiling the library's readers once instead of once per target is
// most of the fuzzers' build time.

#include "fuzz_targets.hpp"

extern "C" int ckpt_fuzz_reader(const std::uint8_t* data, std::size_t size) {
  return ckpt::fuzz::fuzz_reader(data, size);
}

extern "C" int ckpt_fuzz_safetensors_header(const std::uint8_t* data, std::size_t size) {
  return ckpt::fuzz::fuzz_safetensors_header(data, size);
}

extern "C" int ckpt_fuzz_cli_arguments(const std::uint8_t* data, std::size_t size) {
  return ckpt::fuzz::fuzz_cli_arguments(data, size);
}

#if defined(CKPT_WITH_NPZ)
extern "C" int ckpt_fuzz_npz(const std::uint8_t* data, std::size_t size) { return ckpt::fuzz::fuzz_npz(data, size); }
#endif

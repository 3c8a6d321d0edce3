// The libFuzzer entry point of every target: cmake/ckptFuzz.cmake compiles it
// once per target with CKPT_FUZZ_TARGET naming an entry point of
// fuzz_entry_points.cpp, which is compiled once for all targets.

#include <cstddef>
#include <cstdint>

#ifndef CKPT_FUZZ_TARGET
#error "define CKPT_FUZZ_TARGET as the entry point of fuzz_entry_points.cpp to call"
#endif

extern "C" int CKPT_FUZZ_TARGET(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return CKPT_FUZZ_TARGET(data, size);
}

// The libFuzzer entry point of every target: cmake/ckptFuzz.cmake compiles it
// once per target with CKPT_FUZZ_TARGET naming a function of fuzz_targets.hpp.

#include "fuzz_targets.hpp"

#ifndef CKPT_FUZZ_TARGET
#error "define CKPT_FUZZ_TARGET as the ckpt::fuzz function to call"
#endif

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return ckpt::fuzz::CKPT_FUZZ_TARGET(data, size);
}

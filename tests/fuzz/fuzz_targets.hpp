#pragma once

// The bodies of the fuzz targets, shared by the libFuzzer executables
// (tests/fuzz/*_fuzzer.cpp) and by the gtest that replays the seed corpora and
// every crash ever found (tests/reliability/fuzz_replay_test.cpp).
//
// Each target accepts any bytes. Refusing them with a ckpt::Error is correct;
// any other exception, a crash or a sanitizer report is a bug. Inputs reach
// the readers as files in memory (memfd), since they open files by path.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "cli/args.hpp"
#include "in_memory_file.hpp"
#if defined(CKPT_WITH_NPZ)
#include "ckpt/interop/npz.hpp"
#endif

namespace ckpt::fuzz {

// Everything a user can do with an opened file: list, verify, read each
// tensor both ways. One thread, so inputs replay deterministically.
inline void read_everything(const std::string& path) {
  ReadOptions options;
  options.threads = 1;
  const Reader reader(path, options);
  (void)reader.metadata();
  for (const TensorInfo& info : reader.tensors()) {
    const Tensor tensor = reader.tensor(info.name);
    std::vector<std::byte> copy(tensor.nbytes());
    reader.read_into(info.name, copy.data(), copy.size());
  }
  reader.verify();
}

// Whole files as they lie on disk: ckpt checkpoints (raw and compressed) and
// foreign safetensors files.
inline int fuzz_reader(const std::uint8_t* data, std::size_t size) {
  try {
    read_everything(in_memory_file(data, size));
  } catch (const Error&) {
  }
  return 0;
}

// The safetensors header's JSON, framed correctly by the target, so that
// mutations explore the header rules instead of breaking the 8-byte length:
// input = JSON header, then optionally a NUL byte and the data buffer.
inline int fuzz_safetensors_header(const std::uint8_t* data, std::size_t size) {
  std::size_t header_size = 0;
  while (header_size < size && data[header_size] != 0) ++header_size;
  const std::size_t data_start = header_size < size ? header_size + 1 : size;
  std::vector<std::uint8_t> file(8);
  for (int i = 0; i < 8; ++i) file[i] = static_cast<std::uint8_t>(std::uint64_t(header_size) >> (8 * i));
  file.insert(file.end(), data, data + header_size);
  file.insert(file.end(), data + data_start, data + size);
  return fuzz_reader(file.data(), file.size());
}

#if defined(CKPT_WITH_NPZ)
inline int fuzz_npz(const std::uint8_t* data, std::size_t size) {
  try {
    const TensorSet set = load_npz(in_memory_file(data, size));
    for (const auto& [name, tensor] : set.tensors) (void)tensor.nbytes();
  } catch (const Error&) {
  }
  return 0;
}
#endif

// The CLI's argument parser, with the shapes of spec its commands use; input
// = the words, NUL-separated. Checks what the commands rely on.
inline int fuzz_cli_arguments(const std::uint8_t* data, std::size_t size) {
  std::vector<std::string> words(1);
  for (std::size_t i = 0; i < size; ++i) {
    if (data[i] == 0) {
      words.emplace_back();
    } else {
      words.back() += static_cast<char>(data[i]);
    }
  }
  static const std::vector<cli::CommandSpec> specs = {
      {{"--json"}, {"--template"}, 1, 1},
      {{"--force"}, {"--codec"}, 2, 2},
      {{}, {}, 1, 1},
  };
  for (const cli::CommandSpec& spec : specs) {
    try {
      const cli::Arguments arguments(words, spec);
      if (arguments.help()) continue;
      const std::size_t count = arguments.positionals().size();
      if (count < spec.min_positionals || count > spec.max_positionals) std::abort();
      for (const std::string& flag : spec.flags) (void)arguments.flag(flag);
      for (const std::string& option : spec.valued_options) (void)arguments.value(option);
    } catch (const cli::UsageError&) {
    }
  }
  return 0;
}

}  // namespace ckpt::fuzz

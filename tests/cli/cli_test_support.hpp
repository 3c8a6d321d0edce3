#pragma once

// Shared by the cli tests: a temporary directory, file helpers, and running
// the real `ckpt` executable with its exit code and output captured.

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/tensor.hpp"
#include "ckpt/writer.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {

inline bool path_exists(const std::string& path) { return std::filesystem::exists(path); }

// Flips every bit of the byte at `offset` (counted from the end when negative).
inline void flip_byte(const std::string& path, std::int64_t offset) {
  std::string bytes = read_file(path);
  const std::size_t position =
      offset < 0 ? bytes.size() - static_cast<std::size_t>(-offset) : static_cast<std::size_t>(offset);
  bytes.at(position) = static_cast<char>(~bytes[position]);
  write_file(path, bytes);
}

// A small set of tensors covering the dtypes NumPy lacks.
struct SampleTensors {
  std::vector<float> weight{1.5f, -2.25f, 3.0f, 0.0f, -0.0f, 6.5f};
  std::vector<std::uint16_t> bf16_bits{0x3f80, 0xc000, 0x7fc0, 0x0001};
  std::vector<std::uint8_t> fp8_bits{0x00, 0x38, 0x7f, 0xff};
  std::vector<std::int64_t> steps{1, -2, 1LL << 40};
  double scalar = 0.125;
  bool flags[3] = {true, false, true};

  std::vector<NamedTensor> named() const {
    return {{"layer1/weight", TensorView(weight.data(), {2, 3})},
            {"layer1/bias_bf16", TensorView(DType::BF16, {2, 2}, bf16_bits.data())},
            {"fp8", TensorView(DType::F8_E4M3, {4}, fp8_bits.data())},
            {"steps", TensorView(steps.data(), {3})},
            {"scalar", TensorView(&scalar, {})},
            {"flags", TensorView(flags, {3})},
            {"empty", TensorView(DType::F32, {0, 4}, nullptr)}};
  }
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs `program` with `args` (and `environment` added to this process's),
// capturing stdout and stderr in files.
inline CliResult run_program(const std::string& program, const std::vector<std::string>& args,
                             const std::vector<std::string>& environment = {}) {
  TempDir capture;
  const std::string out_path = capture.file("out"), err_path = capture.file("err");
  const pid_t child = ::fork();
  if (child == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    const int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    ::dup2(err, 2);
    for (const std::string& variable : environment) ::putenv(const_cast<char*>(variable.c_str()));
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(child, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out_path), read_file(err_path)};
}

// Runs the ckpt tool with `args`.
inline CliResult run_cli(const std::vector<std::string>& args) { return run_program(CKPT_CLI_PATH, args); }

}  // namespace ckpt::test

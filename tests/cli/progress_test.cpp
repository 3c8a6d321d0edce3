// The progress line of `ckpt verify` and `ckpt convert`: drawn on a terminal
// (a pseudo-terminal here, running the real tool) for large inputs and erased
// at the end; never when stderr is not a terminal, nor for small inputs.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "ckpt/writer.hpp"
#include "cli_test_support.hpp"

namespace {

using ckpt::test::run_cli;
using ckpt::test::TempDir;
using testing::HasSubstr;

struct TerminalResult {
  int exit_code = -1;
  std::string terminal;  // what the tool wrote to its terminal: stderr
  std::string out;       // stdout, redirected to a file
};

// Runs the ckpt tool with stderr on a pseudo-terminal, as in an interactive shell.
TerminalResult run_cli_on_terminal(const std::vector<std::string>& args) {
  TempDir capture;
  const std::string out_path = capture.file("out");
  int terminal = -1;
  const pid_t child = ::forkpty(&terminal, nullptr, nullptr, nullptr);
  if (child == 0) {
    const int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(out, 1);
    std::vector<char*> argv{const_cast<char*>(CKPT_CLI_PATH)};
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    ::execv(CKPT_CLI_PATH, argv.data());
    ::_exit(127);
  }
  TerminalResult result;
  // Read until the tool's side of the terminal is closed (EIO on Linux).
  char buffer[4096];
  while (true) {
    const ssize_t size = ::read(terminal, buffer, sizeof buffer);
    if (size > 0) {
      result.terminal.append(buffer, static_cast<std::size_t>(size));
    } else if (size < 0 && errno == EINTR) {
      continue;
    } else {
      break;
    }
  }
  ::close(terminal);
  int status = 0;
  ::waitpid(child, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  result.out = ckpt::test::read_file(out_path);
  return result;
}

// A checkpoint of 64 MiB of tensors plus its header: just large enough for a progress line.
std::string write_large_checkpoint(const TempDir& dir) {
  const std::vector<float> values(std::size_t(8) << 20, 0.5f);
  const std::string path = dir.file("large.safetensors");
  ckpt::write_checkpoint(path,
                         {{"a", ckpt::TensorView(values.data(), {values.size()})},
                          {"b", ckpt::TensorView(values.data(), {values.size()})}},
                         {});
  return path;
}

// The line was erased last: its final '\r'-separated piece is blank.
void expect_erased(const std::string& terminal) {
  ASSERT_FALSE(terminal.empty());
  EXPECT_EQ(terminal.back(), '\r');
  const std::size_t start = terminal.rfind('\r', terminal.size() - 2);
  ASSERT_NE(start, std::string::npos);
  EXPECT_EQ(terminal.find_first_not_of(' ', start + 1), terminal.size() - 1) << "not blank: " << terminal.substr(start);
}

TEST(CliProgress, VerifyAndConvertDrawAProgressLineOnATerminalAndEraseIt) {
  TempDir dir;
  const std::string large = write_large_checkpoint(dir);

  const TerminalResult verify = run_cli_on_terminal({"verify", large});
  EXPECT_EQ(verify.exit_code, 0) << verify.terminal;
  EXPECT_THAT(verify.out, HasSubstr("OK       " + large));
  EXPECT_THAT(verify.terminal, HasSubstr("\rckpt verify: 0 B of 64.0 MiB (0%)"));
  // Drawn again below the file's line, complete.
  EXPECT_THAT(verify.terminal, testing::ContainsRegex("\rckpt verify: 64\\.0 MiB of 64\\.0 MiB \\(100%\\), "
                                                      "[0-9.]+ [KMGT]?i?B/s"));
  expect_erased(verify.terminal);

  const TerminalResult convert = run_cli_on_terminal({"convert", large, dir.file("copy.safetensors")});
  EXPECT_EQ(convert.exit_code, 0) << convert.terminal;
  EXPECT_THAT(convert.out, HasSubstr("wrote " + dir.file("copy.safetensors")));
  EXPECT_THAT(convert.terminal, HasSubstr("\rckpt convert: 0 B of 64.0 MiB (0%)"));
  EXPECT_THAT(convert.terminal, HasSubstr("\rckpt convert: read 64.0 MiB, writing the output"));
  expect_erased(convert.terminal);
}

TEST(CliProgress, NothingIsDrawnWhenStderrIsNotATerminal) {
  TempDir dir;
  const std::string large = write_large_checkpoint(dir);
  const auto verify = run_cli({"verify", large});
  EXPECT_EQ(verify.exit_code, 0);
  EXPECT_EQ(verify.err, "");
  const auto convert = run_cli({"convert", large, dir.file("copy.safetensors")});
  EXPECT_EQ(convert.exit_code, 0);
  EXPECT_EQ(convert.err, "");
}

TEST(CliProgress, SmallInputsDrawNothingOnATerminal) {
  TempDir dir;
  const std::vector<float> values(1024, 0.5f);
  const std::string small = dir.file("small.safetensors");
  ckpt::write_checkpoint(small, {{"a", ckpt::TensorView(values.data(), {values.size()})}}, {});
  const TerminalResult verify = run_cli_on_terminal({"verify", small});
  EXPECT_EQ(verify.exit_code, 0);
  EXPECT_THAT(verify.out, HasSubstr("OK       " + small));
  EXPECT_EQ(verify.terminal, "");
  const TerminalResult convert = run_cli_on_terminal({"convert", small, dir.file("copy.safetensors")});
  EXPECT_EQ(convert.exit_code, 0);
  EXPECT_EQ(convert.terminal, "");
}

}  // namespace

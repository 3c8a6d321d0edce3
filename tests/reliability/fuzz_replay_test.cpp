// Replays every fuzzer input kept in the repository, the seed corpora
// (tests/fuzz/corpus/<target>/) and every crash ever found
// (tests/fuzz/regressions/<target>/), through the same target functions the
// fuzzers call, so a fixed crash stays fixed in every build, sanitized or not.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "fuzz/fuzz_targets.hpp"
#include "report.hpp"
#include "safetensors_bytes.hpp"

namespace ckpt::test {
namespace {

using Target = int (*)(const std::uint8_t*, std::size_t);

// Runs `target` on each file under tests/fuzz/<kind>/<name>/; returns how many.
std::uint64_t replay(const std::string& kind, const std::string& name, Target target) {
  const std::filesystem::path directory = std::filesystem::path(CKPT_FUZZ_DIR) / kind / name;
  std::uint64_t count = 0;
  if (!std::filesystem::is_directory(directory)) return count;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    if (!entry.is_regular_file()) continue;
    const Bytes input = read_file_bytes(entry.path().string());
    SCOPED_TRACE(entry.path().string());
    EXPECT_NO_THROW(target(reinterpret_cast<const std::uint8_t*>(input.data()), input.size()));
    ++count;
  }
  return count;
}

void replay_target(const std::string& name, Target target) {
  const std::uint64_t seeds = replay("corpus", name, target);
  EXPECT_GT(seeds, 0u) << "the seed corpus of " << name << " is missing";
  report_count("fuzz seeds replayed (" + name + ")", seeds);
  report_count("fuzz regressions replayed (" + name + ")", replay("regressions", name, target));
}

TEST(FuzzReplay, Reader) { replay_target("reader", fuzz::fuzz_reader); }
TEST(FuzzReplay, SafetensorsHeader) { replay_target("safetensors", fuzz::fuzz_safetensors_header); }
TEST(FuzzReplay, CliArguments) { replay_target("cli_arguments", fuzz::fuzz_cli_arguments); }
#if defined(CKPT_WITH_NPZ)
TEST(FuzzReplay, Npz) { replay_target("npz", fuzz::fuzz_npz); }
#endif

}  // namespace
}  // namespace ckpt::test

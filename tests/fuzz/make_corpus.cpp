// Writes the fuzzers' seed corpora: small valid files of every kind each
// target reads, and the small hostile files of the reliability sweep, so
// fuzzing starts from both sides of every check.
//
//   ckpt_fuzz_corpus OUT_DIR   (writes OUT_DIR/<target>/<seed>)

#include <cctype>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"
#include "reliability/hostile_files.hpp"
#include "reliability/sample_checkpoint.hpp"
#if defined(CKPT_WITH_NPZ)
#include "ckpt/interop/npz.hpp"
#endif

namespace {

using ckpt::test::Bytes;

// Seeds stay small: libFuzzer mutates small inputs much faster.
constexpr std::size_t max_seed_bytes = 4096;

std::string seed_name(std::string what) {
  for (char& c : what) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return what;
}

void write_seed(const std::filesystem::path& directory, const std::string& name, const Bytes& bytes) {
  if (bytes.size() > max_seed_bytes) return;
  std::filesystem::create_directories(directory);
  ckpt::test::write_file_bytes((directory / seed_name(name)).string(), bytes);
}

// The safetensors target's input: the header JSON, a NUL, the data buffer.
Bytes header_seed(const Bytes& file) {
  const std::uint64_t header_end = 8 + ckpt::test::read_u64_le(file);
  Bytes seed(file.begin() + 8, file.begin() + static_cast<std::ptrdiff_t>(header_end));
  seed.push_back(std::byte{0});
  seed.insert(seed.end(), file.begin() + static_cast<std::ptrdiff_t>(header_end), file.end());
  return seed;
}

Bytes words(const std::vector<std::string>& list) {
  std::string joined;
  for (std::size_t i = 0; i < list.size(); ++i) joined += (i ? std::string(1, '\0') : "") + list[i];
  return ckpt::test::to_bytes(joined);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ckpt_fuzz_corpus OUT_DIR\n";
    return 2;
  }
  const std::filesystem::path out = argv[1];
  const std::filesystem::path scratch = std::filesystem::temp_directory_path() / "ckpt-fuzz-corpus.ckpt";
  const ckpt::test::SampleCheckpoint sample = ckpt::test::make_sample(3);

  for (const std::string codec : {"raw", "zstd", "shuffle+zstd"}) {
    ckpt::test::save_sample(scratch.string(), sample, codec);
    const Bytes file = ckpt::test::read_file_bytes(scratch.string());
    write_seed(out / "reader", "ckpt_" + codec, file);
    write_seed(out / "safetensors", "ckpt_" + codec, header_seed(file));
  }
  const Bytes foreign = ckpt::test::container(
      R"({"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
      Bytes(16, std::byte{0x3f}));
  write_seed(out / "reader", "foreign_safetensors", foreign);
  write_seed(out / "safetensors", "foreign_safetensors", header_seed(foreign));
  for (const ckpt::test::HostileFile& hostile : ckpt::test::hostile_safetensors_files()) {
    write_seed(out / "reader", "hostile_" + hostile.what, hostile.bytes);
  }
  for (const ckpt::test::HostileFile& hostile : ckpt::test::hostile_ckpt_files(scratch.string())) {
    write_seed(out / "reader", "hostile_" + hostile.what, hostile.bytes);
  }

#if defined(CKPT_WITH_NPZ)
  for (const bool compress : {false, true}) {
    const std::string npz = scratch.string() + ".npz";
    ckpt::save_npz(npz, sample.tensors, sample.metadata, ckpt::NpzOptions{compress});
    write_seed(out / "npz", compress ? "savez_compressed" : "savez", ckpt::test::read_file_bytes(npz));
    std::filesystem::remove(npz);
  }
#endif
  std::filesystem::remove(scratch);

  const std::vector<std::vector<std::string>> command_lines = {
      {"model.ckpt"},
      {"runs/", "--json"},
      {"--template", "step-{step:06}.safetensors", "runs/"},
      {"in.npz", "out.ckpt", "--codec", "shuffle+zstd:5", "--force"},
      {"in.ckpt", "out.h5", "--codec=deflate:9"},
      {"--", "-starts-with-dash.ckpt"},
      {"--help"},
      {"a", "b", "c"},
      {"--codec"},
      {"--unknown", "x"},
  };
  for (std::size_t i = 0; i < command_lines.size(); ++i) {
    write_seed(out / "cli_arguments", "command_line_" + std::to_string(i), words(command_lines[i]));
  }
  return 0;
}

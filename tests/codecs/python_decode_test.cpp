// Runs the Python decoder of docs/codecs.md (numpy + zstandard) on checkpoints
// ckpt wrote with each codec, so the documented recipe keeps working.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "ckpt/codec.hpp"
#include "ckpt/writer.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;

// The first ```python block of docs/codecs.md (found from this file's path).
std::string documented_decoder() {
  std::ifstream doc(fs::path(__FILE__).parent_path() / ".." / ".." / "docs" / "codecs.md");
  std::stringstream text;
  text << doc.rdbuf();
  const std::string all = text.str();
  const std::string open = "```python\n";
  const std::size_t begin = all.find(open);
  if (begin == std::string::npos) return {};
  const std::size_t end = all.find("```", begin + open.size());
  return all.substr(begin + open.size(), end - begin - open.size());
}

// Loads the checkpoint with the documented function and compares each tensor's
// dtype, shape and bytes with the files ckpt_test wrote next to it.
const char* const comparison = R"(
import sys
directory = sys.argv[1]
tensors = load_checkpoint(directory + "/model.safetensors")
expected = json.load(open(directory + "/expected.json"))
assert sorted(tensors) == sorted(expected), (sorted(tensors), sorted(expected))
for name, (dtype, shape) in expected.items():
    array = tensors[name]
    assert array.dtype == np.dtype(NUMPY_DTYPES[dtype]), (name, array.dtype)
    assert list(array.shape) == shape, (name, array.shape)
    assert array.tobytes() == open(directory + "/" + name + ".bin", "rb").read(), name
)";

class PythonDecode : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::system("/usr/bin/python3 -c 'import numpy, zstandard' 2>/dev/null") != 0) {
      GTEST_SKIP() << "/usr/bin/python3 with numpy and zstandard is not available";
    }
    decoder = documented_decoder();
    ASSERT_NE(decoder.find("def load_checkpoint"), std::string::npos) << "no python block in docs/codecs.md";
  }

  // Writes the tensors with `policy`, the expected bytes beside them, and runs the decoder.
  int decode_in_python(const std::vector<ckpt::NamedTensor>& tensors, const ckpt::CodecPolicy& policy) {
    ckpt::SaveOptions options;
    options.codecs = policy;
    options.chunk_bytes = 1000;  // several chunks per tensor
    ckpt::write_checkpoint((directory / "model.safetensors").string(), tensors, nlohmann::json::object(), options);
    nlohmann::json expected = nlohmann::json::object();
    for (const ckpt::NamedTensor& tensor : tensors) {
      expected[tensor.name] = {std::string(ckpt::dtype_name(tensor.view.dtype())), tensor.view.shape()};
      std::ofstream(directory / (tensor.name + ".bin"), std::ios::binary)
          .write(reinterpret_cast<const char*>(tensor.view.data()), static_cast<std::streamsize>(tensor.view.nbytes()));
    }
    std::ofstream(directory / "expected.json") << expected.dump();
    std::ofstream(directory / "decode.py") << decoder << comparison;
    const std::string command =
        "/usr/bin/python3 '" + (directory / "decode.py").string() + "' '" + directory.string() + "'";
    return std::system(command.c_str());
  }

  std::string decoder;
  ckpt::test::TempDir temp_dir;
  fs::path directory{temp_dir.path()};
};

TEST_F(PythonDecode, DocumentedDecoderReadsEveryCodec) {
  std::vector<float> weights(50 * 100);
  for (std::size_t i = 0; i < weights.size(); ++i) weights[i] = 0.001f * static_cast<float>(i % 313) - 0.1f;
  std::vector<ckpt::bfloat16> half(700);
  for (std::size_t i = 0; i < half.size(); ++i) half[i].bits = static_cast<std::uint16_t>(0x3c00 + i % 97);
  const std::vector<std::int64_t> steps = {1, -2, 3, 1 << 30};
  const std::vector<double> scalar = {2.5};
  const std::vector<std::uint8_t> flags = {1, 0, 1, 1, 0};
  const std::vector<float> none;
  const std::vector<ckpt::NamedTensor> tensors = {
      {"w", ckpt::TensorView(weights.data(), {50, 100})},
      {"half", ckpt::TensorView(half.data(), {7, 100})},
      {"steps", ckpt::TensorView(steps.data(), {4})},
      {"scalar", ckpt::TensorView(scalar.data(), {})},
      {"flags", ckpt::TensorView(ckpt::DType::BOOL, {5}, flags.data())},
      {"none", ckpt::TensorView(none.data(), {0, 3})},
  };
  for (const char* spec : {"raw", "shuffle+zstd", "zstd:5"}) {
    EXPECT_EQ(decode_in_python(tensors, spec), 0) << spec;
  }
  // Mixed codecs in one file, as a policy makes them.
  EXPECT_EQ(decode_in_python(
                tensors, ckpt::CodecPolicy("zstd").for_names("w", "raw").for_dtype(ckpt::DType::BF16, "shuffle+zstd")),
            0);
}

}  // namespace

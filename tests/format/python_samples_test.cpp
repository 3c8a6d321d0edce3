// Writes the sample files safetensors_reader.py checks (into
// $CKPT_FORMAT_SAMPLE_DIR when set, which the python test does) and reads
// them back here, so this test is meaningful on its own too.
#include <cstdlib>
#include <string>
#include <vector>

#include "format_test_support.hpp"

namespace {

using namespace ckpt_format_test;
using ckpt::DType;

TEST(PythonSamples, WriteAndReadBack) {
  TempDir temp;
  const char* requested = std::getenv("CKPT_FORMAT_SAMPLE_DIR");
  const std::string dir = requested != nullptr ? requested : temp.path();

  // Pattern tensors of every dtype, in shapes the python side recomputes.
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::NamedTensor> tensors;
  const std::vector<ckpt::Shape> shapes = {{37}, {3, 5}, {2, 3, 4}};
  for (DType dtype : ckpt::all_dtypes) {
    for (const ckpt::Shape& shape : shapes) {
      data.push_back(pattern_bytes(dtype, ckpt::element_count(shape)));
      tensors.push_back({"pattern/" + std::string(ckpt::dtype_name(dtype)) + "/" + std::to_string(shape.size()) + "d",
                         ckpt::TensorView(dtype, shape, data.back().data())});
    }
  }
  // Values numpy compares as numbers: (i - 10) / 4 is exact in F32 and F64.
  std::vector<float> quarters32(24);
  std::vector<double> quarters64(24);
  for (std::size_t i = 0; i < 24; ++i) quarters32[i] = quarters64[i] = (static_cast<double>(i) - 10) / 4;
  tensors.push_back({"values/f32", ckpt::TensorView(quarters32.data(), {4, 6})});
  tensors.push_back({"values/f64", ckpt::TensorView(quarters64.data(), {24})});
  const double scalar = 6.5;
  tensors.push_back({"values/scalar", ckpt::TensorView(&scalar, {})});
  tensors.push_back({"values/empty", ckpt::TensorView(DType::I32, {0, 5}, nullptr)});
  const nlohmann::json metadata = {{"step", 42}, {"name", "sample"}};

  const std::string raw_path = dir + "/raw.safetensors";
  ckpt::write_checkpoint(raw_path, tensors, metadata);
  ckpt::SaveOptions compressed;
  compressed.codecs = ckpt::CodecPolicy("raw").for_names("pattern/*", "shuffle+zstd");
  compressed.chunk_bytes = 64;
  if (ckpt::CodecRegistry::instance().contains("shuffle+zstd")) {
    ckpt::write_checkpoint(dir + "/compressed.safetensors", tensors, metadata, compressed);
  }

  const ckpt::Reader reader(raw_path);
  reader.verify();
  EXPECT_EQ(reader.metadata(), metadata);
  for (std::size_t i = 0; i < data.size(); ++i) {
    const ckpt::Tensor tensor = reader.tensor(tensors[i].name);
    EXPECT_EQ(bytes_as_string(tensor.data(), tensor.nbytes()), bytes_as_string(data[i].data(), data[i].size()))
        << tensors[i].name;
  }
  EXPECT_EQ(reader.tensor("values/f32").data_as<float>()[0], -2.5f);
}

}  // namespace

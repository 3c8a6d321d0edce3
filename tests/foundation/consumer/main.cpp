// A program outside the repository: saves a checkpoint and reads it back
// through the ckpt package it was built against.
#include <ckpt/ckpt.hpp>

// Linked with ckpt::compiled, the program must call the library's code, not
// compile its own (CKPT_COMPILED comes with the target).
#if defined(CKPT_EXPECT_COMPILED) && !defined(CKPT_COMPILED)
#error "ckpt::compiled did not define CKPT_COMPILED"
#endif

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer FILE\n";
    return 2;
  }
  const std::string path = argv[1];
  const std::vector<float> weights{1.5f, -2.0f, 0.25f, 8.0f, 3.0f, -0.5f};
  ckpt::SaveOptions options;
#ifdef CKPT_WITH_ZSTD
  options.codecs = ckpt::CodecPolicy("zstd");  // the package must carry zstd to its users
#endif
  ckpt::write_checkpoint(path, {{"layer/weight", ckpt::TensorView(weights.data(), {2, 3})}}, {{"step", 7}}, options);

  const ckpt::Reader reader(path);
  std::vector<float> loaded(weights.size());
  reader.read_into("layer/weight", loaded.data(), loaded.size() * sizeof(float));
  const bool same = loaded == weights && reader.metadata().value("step", 0) == 7 &&
                    reader.find("layer/weight")->shape == ckpt::Shape{2, 3};
  std::cout << (same ? "round trip ok" : "round trip differs") << " (codec " << reader.find("layer/weight")->codec
            << ")\n";
  return same ? 0 : 1;
}

// A program built against the installed package only: it saves and loads a
// checkpoint, compressed when the package was installed with zstd, and prints
// whether zstd and the compiled mode came through the package config so the
// test can compare.
#include <ckpt/ckpt.hpp>

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const std::string path = std::string(argv[1]) + "/consumer.safetensors";
  const std::vector<float> weights = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1.0f};
#ifdef CKPT_WITH_ZSTD
  const char* codec = "zstd";
#else
  const char* codec = "raw";
#endif
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(codec);
  ckpt::write_checkpoint(path, {{"layer/weight", ckpt::TensorView(weights.data(), {2, 3})}}, {{"step", 7}}, options);

  const ckpt::Reader reader(path);
  std::vector<float> loaded(weights.size());
  reader.read_into("layer/weight", loaded.data(), loaded.size() * sizeof(float));
  const bool ok = loaded == weights && reader.metadata().at("step") == 7 && reader.find("layer/weight")->codec == codec;
#ifdef CKPT_COMPILED
  const char* compiled = "yes";
#else
  const char* compiled = "no";
#endif
  std::printf("zstd: %s, compiled: %s\n", std::string(codec) == "zstd" ? "yes" : "no", compiled);
  return ok ? 0 : 1;
}

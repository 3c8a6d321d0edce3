// Writes tests/data/format_v1.ckpt. Kept to show how the fixture was made:
// built against ckpt 2ce8c0a (format version 1) it wrote the committed file;
// built against a later ckpt it writes that version's format instead, so the
// committed file is never regenerated.
#include <cstdio>

#include "v1_fixture_values.hpp"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_v1_fixture OUT\n");
    return 2;
  }
  std::vector<ckpt::NamedTensor> named;
  const auto tensors = ckpt_v1_fixture::tensors();
  ckpt::SaveOptions options;
  options.chunk_bytes = ckpt_v1_fixture::chunk_bytes;
  for (const auto& tensor : tensors) {
    named.push_back({tensor.name, ckpt::TensorView(tensor.dtype, tensor.shape, tensor.bytes.data())});
    options.codecs.for_names(tensor.name, tensor.codec);
  }
  ckpt::write_checkpoint(argv[1], named, {{"step", 7}, {"fixture", "format v1"}}, options);
  return 0;
}

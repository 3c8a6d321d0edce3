#pragma once

// Small deterministic checkpoints with one tensor of most shapes that matter
// (scalar, zero-size, odd lengths, several dtypes), and the comparison that
// decides whether a file gives back exactly what was saved.

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/ckpt.hpp"

namespace ckpt::test {

struct SampleCheckpoint {
  std::vector<std::vector<std::byte>> storage;  // the bytes the views point into
  std::vector<NamedTensor> tensors;
  nlohmann::json metadata;

  SampleCheckpoint() = default;
  SampleCheckpoint(const SampleCheckpoint&) = delete;  // views point into `storage`
  SampleCheckpoint& operator=(const SampleCheckpoint&) = delete;
  SampleCheckpoint(SampleCheckpoint&&) = default;
};

// Different seeds give different values (and sizes), so a reader showing the
// wrong generation of a checkpoint is caught.
inline SampleCheckpoint make_sample(std::uint32_t seed) {
  std::mt19937 random(seed);
  SampleCheckpoint sample;
  struct Spec {
    const char* name;
    DType dtype;
    Shape shape;
  };
  const std::uint64_t rows = 6 + seed % 5;
  const Spec specs[] = {
      {"model/fc1.weight", DType::F32, {rows, 12}},
      {"model/fc1.bias", DType::F32, {12}},
      {"model/emb", DType::BF16, {10, 7}},
      {"optimizer/step", DType::I64, {}},
      {"optimizer/exp_avg/fc1.bias", DType::F64, {12}},
      {"mask", DType::BOOL, {9}},
      {"counts", DType::U16, {5}},
      {"empty", DType::F32, {0, 4}},
  };
  sample.storage.reserve(std::size(specs));
  for (const Spec& spec : specs) {
    std::vector<std::byte> bytes(byte_size(spec.dtype, spec.shape));
    // Few distinct values, so the compressed samples really compress.
    for (std::byte& b : bytes) b = std::byte(spec.dtype == DType::BOOL ? random() % 2 : random() % 7 * 37);
    sample.storage.push_back(std::move(bytes));
    sample.tensors.push_back({spec.name, TensorView(spec.dtype, spec.shape, sample.storage.back().data())});
  }
  sample.metadata = {{"step", seed}, {"note", "gr\u00fc\u00dfe"}, {"lr", 0.001}};
  return sample;
}

inline SaveOptions sample_options(const std::string& codec) {
  SaveOptions options;
  options.codecs = CodecPolicy(codec);
  options.chunk_bytes = 96;  // several chunks per compressed tensor, in a small file
  options.threads = 1;
  return options;
}

inline SaveStats save_sample(const std::string& path, const SampleCheckpoint& sample,
                             const std::string& codec = "raw") {
  return write_checkpoint(path, sample.tensors, sample.metadata, sample_options(codec));
}

// Empty when `reader` gives back exactly `sample` (names, dtypes, shapes,
// bytes, metadata); otherwise what differs. Lets ckpt's errors through.
inline std::string difference(const Reader& reader, const SampleCheckpoint& sample) {
  if (reader.metadata() != sample.metadata) return "metadata " + reader.metadata().dump();
  if (reader.tensors().size() != sample.tensors.size()) {
    return std::to_string(reader.tensors().size()) + " tensors instead of " + std::to_string(sample.tensors.size());
  }
  for (const NamedTensor& expected : sample.tensors) {
    const TensorInfo* info = reader.find(expected.name);
    if (info == nullptr) return "tensor '" + expected.name + "' missing";
    const Tensor loaded = reader.tensor(expected.name);
    if (loaded.dtype() != expected.view.dtype() || loaded.shape() != expected.view.shape() ||
        info->dtype != expected.view.dtype() || info->shape != expected.view.shape()) {
      return "tensor '" + expected.name + "' has dtype/shape " + std::string(dtype_name(loaded.dtype())) +
             shape_to_string(loaded.shape());
    }
    const std::uint64_t size = expected.view.nbytes();
    if (size != 0 && std::memcmp(loaded.data(), expected.view.data(), size) != 0) {
      return "tensor '" + expected.name + "' has different bytes";
    }
  }
  return {};
}

inline std::string difference(const std::string& path, const SampleCheckpoint& sample) {
  Reader reader(path);
  reader.verify();
  return difference(reader, sample);
}

}  // namespace ckpt::test

#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "ckpt/writer.hpp"

namespace ckpt::test {

// `tensors` float32 tensors of `tensor_bytes` each, of values that compress
// (so the compressed save does real work) but not to nothing.
struct LargeState {
  LargeState(std::size_t tensors, std::size_t tensor_bytes) : storage(tensors) {
    for (std::size_t t = 0; t < tensors; ++t) {
      storage[t].resize(tensor_bytes / 4);
      for (std::size_t i = 0; i < storage[t].size(); ++i)
        storage[t][i] = static_cast<float>((i * 2654435761u + t) % 1000) / 7.0f;
      views.push_back(NamedTensor{"layer" + std::to_string(t) + "/weight",
                                  TensorView(DType::F32, {storage[t].size()}, storage[t].data())});
    }
  }
  std::vector<std::vector<float>> storage;
  std::vector<NamedTensor> views;
};

}  // namespace ckpt::test

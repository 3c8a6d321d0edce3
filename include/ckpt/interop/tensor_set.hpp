#pragma once

// Tensors loaded whole from a file in another format (.npz, HDF5), in file
// order, with the checkpoint metadata that travelled with them.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/tensor.hpp"

namespace ckpt {

struct TensorSet {
  std::vector<std::pair<std::string, Tensor>> tensors;
  nlohmann::json metadata = nlohmann::json(nlohmann::json::value_t::object);

  template <class = void>
  const Tensor* find(std::string_view name) const noexcept {
    for (const auto& [tensor_name, tensor] : tensors) {
      if (tensor_name == name) return &tensor;
    }
    return nullptr;
  }

  // Views for write_checkpoint / save_npz / save_hdf5; valid while this set
  // lives. A template only so that programs that do not save a TensorSet do
  // not compile it (see "Compile time" in docs/architecture.md).
  template <class = void>
  std::vector<NamedTensor> views() const {
    std::vector<NamedTensor> views;
    views.reserve(tensors.size());
    for (const auto& [name, tensor] : tensors) views.push_back({name, tensor.view()});
    return views;
  }
};

}  // namespace ckpt

#pragma once

// Optional adapter: libtorch tensors, modules and optimizers in a checkpoint.
// Include it (and link libtorch) to describe them like any other member:
//
//   struct TrainState {
//     torch::nn::Sequential model;
//     torch::optim::Adam optimizer;
//     std::int64_t step = 0;
//     template <class Archive> void describe(Archive& ar) {
//       ar("model", model);          // every parameter and buffer, under its torch name ("0.weight")
//       ar("optimizer", optimizer);  // hyperparameters and per-parameter state
//       ar("step", step);
//     }
//   };
//
// A module is saved as its named parameters and buffers. An optimizer (Adam or
// SGD) is saved as param_groups/<group>/<hyperparameter> metadata and
// state/<index>/<field> tensors, with parameters numbered across groups as in
// PyTorch's state_dict. Loads copy into the existing tensors, on their device.

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt {
namespace detail {

inline DType dtype_of_torch(const at::Tensor& tensor) {
  switch (tensor.scalar_type()) {
    case at::kBool: return DType::BOOL;
    case at::kByte: return DType::U8;
    case at::kChar: return DType::I8;
    case at::kShort: return DType::I16;
    case at::kInt: return DType::I32;
    case at::kLong: return DType::I64;
    case at::kHalf: return DType::F16;
    case at::kBFloat16: return DType::BF16;
    case at::kFloat: return DType::F32;
    case at::kDouble: return DType::F64;
    default:
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          join({"torch dtype ", c10::toString(tensor.scalar_type()),
                                " has no checkpoint dtype (bool, uint8, int8, int16, int32, int64, float16, "
                                "bfloat16, float32 and float64 do)"}));
  }
}

inline const at::Tensor& defined_tensor(const at::Tensor& tensor) {
  if (!tensor.defined()) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        "an undefined torch::Tensor has no dtype or shape; allocate it before saving or loading");
  }
  return tensor;
}

inline TensorLayout torch_layout(const at::Tensor& tensor) {
  const at::Tensor& defined = defined_tensor(tensor);
  const auto sizes = defined.sizes();
  return {dtype_of_torch(defined), Shape(sizes.begin(), sizes.end())};
}

// Copies a loaded tensor's bytes into `cpu` (dense, on the CPU, of the same
// dtype and shape: the load has checked them).
inline void fill_from(at::Tensor& cpu, const Tensor& source) {
  if (static_cast<std::uint64_t>(cpu.nbytes()) != source.nbytes()) {
    throw MismatchError(ErrorId::mismatch_state, "", "",
                        join({"torch tensor holds ", cpu.nbytes(), " bytes, the file ", source.nbytes()}));
  }
  if (source.nbytes() != 0) std::memcpy(cpu.data_ptr(), source.data(), source.nbytes());
  // A file byte other than 0 or 1 must not become an invalid bool.
  if (source.dtype() == DType::BOOL) {
    auto* bytes = static_cast<unsigned char*>(cpu.data_ptr());
    for (std::uint64_t i = 0; i < source.nbytes(); ++i) bytes[i] = bytes[i] != 0 ? 1 : 0;
  }
}

// A new tensor like `like` (dtype, device) holding the loaded values.
inline at::Tensor torch_copy_of(const Tensor& source, const at::Tensor& like) {
  const std::vector<std::int64_t> sizes(source.shape().begin(), source.shape().end());
  at::Tensor cpu = at::empty(sizes, like.options().device(at::kCPU));
  fill_from(cpu, source);
  return cpu.to(like.device());
}

// One field of an optimizer's per-parameter state. It reads and writes the
// optimizer only through these functions, so that a load changes nothing
// before every tensor of the file has been checked.
struct OptimizerStateField {
  TensorLayout layout;
  std::function<at::Tensor()> read;          // the value to save
  std::function<void(const Tensor&)> write;  // stores a loaded value
};

}  // namespace detail

template <>
struct tensor_traits<at::Tensor> {
  static TensorLayout layout(const at::Tensor& tensor) { return detail::torch_layout(tensor); }
  // Without a copy when the tensor already is dense and on the CPU; the
  // returned Tensor keeps a reference to the torch storage alive.
  static Tensor to_tensor(const at::Tensor& tensor) {
    const TensorLayout layout = detail::torch_layout(tensor);
    auto dense = std::make_shared<at::Tensor>(tensor.detach().to(at::kCPU).contiguous());
    const void* data = dense->data_ptr();
    return Tensor::borrowed(layout.dtype, layout.shape, data, std::move(dense));
  }
  // Copies into the target's own storage, so that the module or optimizer
  // holding it sees the values (it is never rebound to a new tensor).
  static void assign(at::Tensor& target, const Tensor& source) {
    const at::NoGradGuard no_grad;
    const bool dense_on_cpu = detail::defined_tensor(target).is_cpu() && target.is_contiguous();
    if (dense_on_cpu) {
      detail::fill_from(target, source);
    } else {
      target.copy_(detail::torch_copy_of(source, target));
    }
  }
};

template <>
struct tensor_traits<detail::OptimizerStateField> {
  static TensorLayout layout(const detail::OptimizerStateField& field) { return field.layout; }
  static Tensor to_tensor(const detail::OptimizerStateField& field) {
    return tensor_traits<at::Tensor>::to_tensor(field.read());
  }
  static void assign(detail::OptimizerStateField& field, const Tensor& source) { field.write(source); }
};

namespace detail {

// libtorch keys an optimizer's per-parameter state by the parameter's TensorImpl address.
inline std::string param_state_key(const at::Tensor& param) {
  return c10::guts::to_string(param.unsafeGetTensorImpl());
}

// The state of `param`, or null before its first step.
template <class ParamState>
ParamState* find_param_state(torch::optim::Optimizer& optimizer, const at::Tensor& param) {
  auto& states = optimizer.state();
  const auto found = states.find(param_state_key(param));
  return found == states.end() ? nullptr : static_cast<ParamState*>(found->second.get());
}

// The state of `param`, created as the optimizer's first step would create it.
template <class ParamState>
ParamState& emplace_param_state(torch::optim::Optimizer& optimizer, const at::Tensor& param,
                                const std::function<void(ParamState&)>& initialise) {
  if (ParamState* existing = find_param_state<ParamState>(optimizer, param)) return *existing;
  auto state = std::make_unique<ParamState>();
  initialise(*state);
  ParamState& created = *state;
  optimizer.state()[param_state_key(param)] = std::move(state);
  return created;
}

// A parameter-shaped state tensor: zeros while the parameter has no state
// (what the optimizer starts from); a load creates the state when missing.
template <class ParamState, class Field>
OptimizerStateField param_state_tensor(torch::optim::Optimizer& optimizer, const at::Tensor& param, Field field,
                                       std::function<void(ParamState&)> initialise) {
  return {torch_layout(param),
          [&optimizer, param, field] {
            ParamState* state = find_param_state<ParamState>(optimizer, param);
            return state != nullptr && field(*state).defined() ? field(*state) : at::zeros_like(param);
          },
          [&optimizer, param, field, initialise = std::move(initialise)](const Tensor& source) {
            field(emplace_param_state<ParamState>(optimizer, param, initialise)) = torch_copy_of(source, param);
          }};
}

// A 0-d integer that decides whether `param` has state at all. Described after
// the parameter's state tensors (loads run in description order), so that a
// parameter without state in the file ends up without state, whatever the
// optimizer held before the load.
template <class ParamState>
OptimizerStateField param_state_scalar(torch::optim::Optimizer& optimizer, const at::Tensor& param,
                                       std::function<std::int64_t(const ParamState&)> read_value,
                                       std::function<void(ParamState&, std::int64_t)> write_value) {
  return {{DType::I64, {}},
          [&optimizer, param, read_value] {
            const ParamState* state = find_param_state<ParamState>(optimizer, param);
            return at::scalar_tensor(state != nullptr ? read_value(*state) : 0, at::kLong);
          },
          [&optimizer, param, write_value](const Tensor& source) {
            std::int64_t value = 0;
            std::memcpy(&value, source.data(), sizeof value);  // the file need not align it
            if (value == 0) {
              optimizer.state().erase(param_state_key(param));
            } else if (ParamState* state = find_param_state<ParamState>(optimizer, param)) {
              write_value(*state, value);
            }
          }};
}

// Describes each group's hyperparameters under param_groups/<group>/ and each
// parameter's state under state/<index>/, parameters numbered across groups.
template <class Options, class DescribeGroup, class DescribeParam>
void describe_optimizer(torch::optim::Optimizer& optimizer, DescribeGroup describe_group,
                        DescribeParam describe_param) {
  std::size_t param_index = 0;
  auto& groups = optimizer.param_groups();
  for (std::size_t group_index = 0; group_index < groups.size(); ++group_index) {
    auto& options = static_cast<Options&>(groups[group_index].options());
    describe_group(join({"param_groups/", group_index, "/"}), options);
    for (const at::Tensor& param : groups[group_index].params()) {
      describe_param(join({"state/", param_index++, "/"}), options, param);
    }
  }
}

template <class Archive>
void describe_adam(Archive& ar, torch::optim::Adam& optimizer) {
  using torch::optim::AdamOptions;
  using torch::optim::AdamParamState;
  const auto describe_group = [&ar](const std::string& prefix, AdamOptions& options) {
    ar(join({prefix, "lr"}), options.lr());
    ar(join({prefix, "beta1"}), std::get<0>(options.betas()));
    ar(join({prefix, "beta2"}), std::get<1>(options.betas()));
    ar(join({prefix, "eps"}), options.eps());
    ar(join({prefix, "weight_decay"}), options.weight_decay());
    ar(join({prefix, "amsgrad"}), options.amsgrad());
  };
  const auto describe_param = [&ar, &optimizer](const std::string& prefix, const AdamOptions& options,
                                                const at::Tensor& param) {
    const bool amsgrad = options.amsgrad();
    // What Adam::step creates on a parameter's first step; a step count of 0
    // with zero moments is exactly a parameter without state.
    std::function<void(AdamParamState&)> initialise = [param, amsgrad](AdamParamState& state) {
      state.step(0);
      state.exp_avg(at::zeros_like(param));
      state.exp_avg_sq(at::zeros_like(param));
      if (amsgrad) state.max_exp_avg_sq(at::zeros_like(param));
    };
    ar(join({prefix, "exp_avg"}),
       param_state_tensor<AdamParamState>(
           optimizer, param, [](AdamParamState& s) -> at::Tensor& { return s.exp_avg(); }, initialise));
    ar(join({prefix, "exp_avg_sq"}),
       param_state_tensor<AdamParamState>(
           optimizer, param, [](AdamParamState& s) -> at::Tensor& { return s.exp_avg_sq(); }, initialise));
    if (amsgrad) {
      ar(join({prefix, "max_exp_avg_sq"}),
         param_state_tensor<AdamParamState>(
             optimizer, param, [](AdamParamState& s) -> at::Tensor& { return s.max_exp_avg_sq(); }, initialise));
    }
    ar(join({prefix, "step"}), param_state_scalar<AdamParamState>(
                                   optimizer, param, [](const AdamParamState& state) { return state.step(); },
                                   [](AdamParamState& state, std::int64_t step) { state.step(step); }));
  };
  describe_optimizer<AdamOptions>(optimizer, describe_group, describe_param);
}

template <class Archive>
void describe_sgd(Archive& ar, torch::optim::SGD& optimizer) {
  using torch::optim::SGDOptions;
  using torch::optim::SGDParamState;
  const auto describe_group = [&ar](const std::string& prefix, SGDOptions& options) {
    ar(join({prefix, "lr"}), options.lr());
    ar(join({prefix, "momentum"}), options.momentum());
    ar(join({prefix, "dampening"}), options.dampening());
    ar(join({prefix, "weight_decay"}), options.weight_decay());
    ar(join({prefix, "nesterov"}), options.nesterov());
  };
  const auto describe_param = [&ar, &optimizer](const std::string& prefix, const SGDOptions& options,
                                                const at::Tensor& param) {
    if (options.momentum() == 0) return;  // plain SGD keeps no state
    ar(join({prefix, "momentum_buffer"}),
       param_state_tensor<SGDParamState>(
           optimizer, param, [](SGDParamState& s) -> at::Tensor& { return s.momentum_buffer(); },
           [](SGDParamState&) {}));
    // SGD's first step copies the gradient into a new buffer, which differs
    // from a zero buffer under dampening: whether there is one is recorded.
    ar(join({prefix, "has_momentum_buffer"}),
       param_state_scalar<SGDParamState>(
           optimizer, param, [](const SGDParamState&) { return std::int64_t{1}; },
           [](SGDParamState&, std::int64_t) {}));
  };
  describe_optimizer<SGDOptions>(optimizer, describe_group, describe_param);
}

template <class Archive>
void describe_module(Archive& ar, torch::nn::Module& module) {
  // Handles, not references: the dictionaries are temporaries, the storage is shared.
  for (const auto& parameter : module.named_parameters()) {
    if (parameter.value().defined()) ar(parameter.key(), at::Tensor(parameter.value()));
  }
  for (const auto& buffer : module.named_buffers()) {
    if (buffer.value().defined()) ar(buffer.key(), at::Tensor(buffer.value()));
  }
}

}  // namespace detail
}  // namespace ckpt

// describe() overloads in libtorch's namespaces, where argument-dependent
// lookup finds them for modules, module holders and optimizers.
namespace torch {
namespace nn {
template <class Archive>
void describe(Archive& ar, Module& module) {
  ckpt::detail::describe_module(ar, module);
}
template <class Archive, class Contained>
void describe(Archive& ar, ModuleHolder<Contained>& holder) {
  ckpt::detail::describe_module(ar, *holder);
}
}  // namespace nn
namespace optim {
template <class Archive>
void describe(Archive& ar, Adam& optimizer) {
  ckpt::detail::describe_adam(ar, optimizer);
}
template <class Archive>
void describe(Archive& ar, SGD& optimizer) {
  ckpt::detail::describe_sgd(ar, optimizer);
}
}  // namespace optim
}  // namespace torch

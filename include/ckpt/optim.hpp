#pragma once

// Adam and SGD with momentum in plain C++ on float parameters, with their
// whole state (moments, step counts, hyperparameters) described for
// checkpoints: a restored optimizer continues bit-exactly as if it had never
// stopped. The update rules follow PyTorch's torch.optim.Adam and
// torch.optim.SGD. Functions of more than a line are templates only so that
// programs that use no optimizer do not compile them (see "Compile time" in
// docs/architecture.md).

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt::optim {

// A parameter and its gradient for one step. The name keys its optimizer
// state ("exp_avg/<name>" in a checkpoint), so it must stay the same across
// steps. The optimizer state is saved in `shape`, so that a moment lines up
// with its weight element by element; an empty shape means flat, [size].
struct Parameter {
  std::string name;
  float* value = nullptr;
  const float* gradient = nullptr;
  std::size_t size = 0;
  Shape shape;
};

// `shape` is the parameter's shape as its checkpoint stores it, e.g. the
// extents given to ckpt::shaped(); it must hold value.size() elements.
template <class = void>
Parameter parameter(std::string name, std::vector<float>& value, const std::vector<float>& gradient, Shape shape = {}) {
  if (value.size() != gradient.size()) {
    throw ArgumentError(
        ErrorId::argument_invalid, "", name,
        ckpt::detail::join({"expected a gradient of ", value.size(), " elements, found ", gradient.size()}));
  }
  if (!shape.empty() && element_count(shape) != value.size()) {
    throw ArgumentError(
        ErrorId::argument_invalid, "", name,
        ckpt::detail::join({"expected a shape of ", value.size(), " elements, found ", shape_to_string(shape)}));
  }
  return Parameter{std::move(name), value.data(), gradient.data(), value.size(), std::move(shape)};
}

namespace detail {

// One parameter's optimizer state (a moment, a momentum buffer), saved as a
// tensor of the parameter's shape.
struct ParameterState {
  std::vector<float> values;
  Shape shape;  // empty: flat

  Shape saved_shape() const { return shape.empty() ? Shape{std::uint64_t{values.size()}} : shape; }
};

// The per-parameter state in `states`, zero-initialised on first use; second
// is true when it was just created.
template <class = void>
std::pair<std::vector<float>&, bool> state_of(std::map<std::string, ParameterState>& states,
                                              const Parameter& parameter) {
  auto [entry, created] =
      states.try_emplace(parameter.name, ParameterState{std::vector<float>(parameter.size, 0.0f), {}});
  ParameterState& state = entry->second;
  if (state.values.size() != parameter.size) {
    throw ArgumentError(ErrorId::argument_invalid, "", parameter.name,
                        ckpt::detail::join({"expected a parameter of ", state.values.size(),
                                            " elements (the size of its optimizer state), found ", parameter.size}));
  }
  // A state loaded flat (files written before shapes were saved) takes the
  // parameter's shape here, and is saved in it from then on.
  if (!parameter.shape.empty()) state.shape = parameter.shape;
  return {state.values, created};
}

}  // namespace detail

struct AdamOptions {
  float learning_rate = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float weight_decay = 0.0f;  // L2 penalty added to the gradient

  template <class Archive>
  void describe(Archive& ar) {
    ar("learning_rate", learning_rate)("beta1", beta1)("beta2", beta2)("epsilon", epsilon)("weight_decay",
                                                                                           weight_decay);
  }
};

// One Adam step of `size` elements: a whole parameter, or the slice of one
// that a rank owns when optimizer state is sharded (ZeRO). `step` counts
// steps from 1, this one included.
inline void adam_update(const AdamOptions& o, std::int64_t step, float* value, const float* gradient, float* exp_avg,
                        float* exp_avg_sq, std::size_t size) {
  const double bias_correction1 = 1.0 - std::pow(static_cast<double>(o.beta1), static_cast<double>(step));
  const double bias_correction2 = 1.0 - std::pow(static_cast<double>(o.beta2), static_cast<double>(step));
  const auto step_size = static_cast<float>(o.learning_rate / bias_correction1);
  const auto bias_correction2_sqrt = static_cast<float>(std::sqrt(bias_correction2));
  for (std::size_t i = 0; i < size; ++i) {
    const float g = gradient[i] + o.weight_decay * value[i];
    exp_avg[i] = o.beta1 * exp_avg[i] + (1.0f - o.beta1) * g;
    exp_avg_sq[i] = o.beta2 * exp_avg_sq[i] + (1.0f - o.beta2) * g * g;
    const float denominator = std::sqrt(exp_avg_sq[i]) / bias_correction2_sqrt + o.epsilon;
    value[i] -= step_size * exp_avg[i] / denominator;
  }
}

class Adam {
 public:
  template <class = void>
  explicit Adam(AdamOptions options = {}) : options_(options) {}

  template <class = void>
  void step(const std::vector<Parameter>& parameters) {
    for (const Parameter& parameter : parameters) update(parameter);
  }

  // Hyperparameters may change between steps (learning-rate schedules).
  AdamOptions& options() noexcept { return options_; }
  const AdamOptions& options() const noexcept { return options_; }
  // Steps taken by `name` so far (0 for a parameter never stepped).
  template <class = void>
  std::int64_t steps(const std::string& name) const {
    const auto found = steps_.find(name);
    return found == steps_.end() ? 0 : found->second;
  }

  template <class Archive>
  void describe(Archive& ar) {
    ar("options", options_)("step", steps_)("exp_avg", exp_avg_)("exp_avg_sq", exp_avg_sq_);
  }

 private:
  template <class = void>
  void update(const Parameter& parameter) {
    std::vector<float>& exp_avg = detail::state_of(exp_avg_, parameter).first;
    std::vector<float>& exp_avg_sq = detail::state_of(exp_avg_sq_, parameter).first;
    // Each parameter counts its own steps, so one that joins later gets its own bias correction.
    const std::int64_t step = ++steps_[parameter.name];
    adam_update(options_, step, parameter.value, parameter.gradient, exp_avg.data(), exp_avg_sq.data(), parameter.size);
  }

  AdamOptions options_;
  std::map<std::string, std::int64_t> steps_;
  std::map<std::string, detail::ParameterState> exp_avg_;
  std::map<std::string, detail::ParameterState> exp_avg_sq_;
};

struct SgdOptions {
  float learning_rate = 1e-2f;
  float momentum = 0.9f;
  float dampening = 0.0f;
  float weight_decay = 0.0f;
  bool nesterov = false;

  template <class Archive>
  void describe(Archive& ar) {
    ar("learning_rate", learning_rate)("momentum", momentum)("dampening", dampening)("weight_decay", weight_decay)(
        "nesterov", nesterov);
  }
};

class SGD {
 public:
  template <class = void>
  explicit SGD(SgdOptions options = {}) : options_(options) {}

  template <class = void>
  void step(const std::vector<Parameter>& parameters) {
    for (const Parameter& parameter : parameters) update(parameter);
    ++steps_;
  }

  SgdOptions& options() noexcept { return options_; }
  const SgdOptions& options() const noexcept { return options_; }
  std::int64_t steps() const noexcept { return steps_; }

  template <class Archive>
  void describe(Archive& ar) {
    ar("options", options_)("step", steps_)("momentum_buffer", momentum_buffers_);
  }

 private:
  template <class = void>
  void update(const Parameter& parameter) {
    const SgdOptions& o = options_;
    std::vector<float>* buffer = nullptr;
    bool first_step = false;
    if (o.momentum != 0.0f) {
      auto state = detail::state_of(momentum_buffers_, parameter);
      buffer = &state.first;
      first_step = state.second;
    }
    for (std::size_t i = 0; i < parameter.size; ++i) {
      float gradient = parameter.gradient[i] + o.weight_decay * parameter.value[i];
      if (buffer != nullptr) {
        float& velocity = (*buffer)[i];
        // As in PyTorch, the buffer starts as the first gradient, undamped.
        velocity = first_step ? gradient : o.momentum * velocity + (1.0f - o.dampening) * gradient;
        gradient = o.nesterov ? gradient + o.momentum * velocity : velocity;
      }
      parameter.value[i] -= o.learning_rate * gradient;
    }
  }

  SgdOptions options_;
  std::int64_t steps_ = 0;
  std::map<std::string, detail::ParameterState> momentum_buffers_;
};

}  // namespace ckpt::optim

namespace ckpt {

// A parameter's optimizer state is a tensor of the parameter's shape. An empty
// state (a fresh optimizer's, as a load creates it) takes the shape the file
// has, flat or not, so that files written when states were saved flat still
// load; a state already stepped expects the shape it has. Templates only so
// that programs without an optimizer do not compile them.
template <>
struct tensor_traits<optim::detail::ParameterState> {
  static constexpr bool resizable = true;
  template <class = void>
  static TensorLayout layout(const optim::detail::ParameterState& state) {
    return {DType::F32, state.values.empty() ? Shape{0} : state.saved_shape()};
  }
  template <class = void>
  static TensorView view(const optim::detail::ParameterState& state) {
    return TensorView(state.values.data(), state.saved_shape());
  }
  template <class = void>
  static void* load_target(optim::detail::ParameterState& state, const Shape& shape) {
    state.values.resize(static_cast<std::size_t>(element_count(shape)));
    state.shape = shape;
    return state.values.data();
  }
};

}  // namespace ckpt

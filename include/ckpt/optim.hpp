#pragma once

// Adam and SGD with momentum in plain C++ on float parameters, with their
// whole state (moments, step counts, hyperparameters) described for
// checkpoints: a restored optimizer continues bit-exactly as if it had never
// stopped. The update rules follow PyTorch's torch.optim.Adam and
// torch.optim.SGD.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/error.hpp"

namespace ckpt::optim {

// A parameter and its gradient for one step. The name keys its optimizer
// state ("exp_avg/<name>" in a checkpoint), so it must stay the same across steps.
struct Parameter {
  std::string name;
  float* value = nullptr;
  const float* gradient = nullptr;
  std::size_t size = 0;
};

inline Parameter parameter(std::string name, std::vector<float>& value, const std::vector<float>& gradient) {
  if (value.size() != gradient.size()) {
    throw ArgumentError(ErrorId::argument_invalid, "", name,
                        "expected a gradient of " + std::to_string(value.size()) + " elements, found " +
                            std::to_string(gradient.size()));
  }
  return Parameter{std::move(name), value.data(), gradient.data(), value.size()};
}

namespace detail {

// The per-parameter state in `states`, zero-initialised on first use; second
// is true when it was just created.
inline std::pair<std::vector<float>&, bool> state_of(std::map<std::string, std::vector<float>>& states,
                                                     const Parameter& parameter) {
  auto [entry, created] = states.try_emplace(parameter.name, parameter.size, 0.0f);
  if (entry->second.size() != parameter.size) {
    throw ArgumentError(ErrorId::argument_invalid, "", parameter.name,
                        "expected a parameter of " + std::to_string(entry->second.size()) +
                            " elements (the size of its optimizer state), found " + std::to_string(parameter.size));
  }
  return {entry->second, created};
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
    ar("learning_rate", learning_rate)("beta1", beta1)("beta2", beta2)("epsilon", epsilon)("weight_decay", weight_decay);
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
  explicit Adam(AdamOptions options = {}) : options_(options) {}

  void step(const std::vector<Parameter>& parameters) {
    for (const Parameter& parameter : parameters) update(parameter);
  }

  // Hyperparameters may change between steps (learning-rate schedules).
  AdamOptions& options() noexcept { return options_; }
  const AdamOptions& options() const noexcept { return options_; }
  // Steps taken by `name` so far (0 for a parameter never stepped).
  std::int64_t steps(const std::string& name) const {
    const auto found = steps_.find(name);
    return found == steps_.end() ? 0 : found->second;
  }

  template <class Archive>
  void describe(Archive& ar) {
    ar("options", options_)("step", steps_)("exp_avg", exp_avg_)("exp_avg_sq", exp_avg_sq_);
  }

 private:
  void update(const Parameter& parameter) {
    std::vector<float>& exp_avg = detail::state_of(exp_avg_, parameter).first;
    std::vector<float>& exp_avg_sq = detail::state_of(exp_avg_sq_, parameter).first;
    // Each parameter counts its own steps, so one that joins later gets its own bias correction.
    const std::int64_t step = ++steps_[parameter.name];
    adam_update(options_, step, parameter.value, parameter.gradient, exp_avg.data(), exp_avg_sq.data(), parameter.size);
  }

  AdamOptions options_;
  std::map<std::string, std::int64_t> steps_;
  std::map<std::string, std::vector<float>> exp_avg_;
  std::map<std::string, std::vector<float>> exp_avg_sq_;
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
  explicit SGD(SgdOptions options = {}) : options_(options) {}

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
  std::map<std::string, std::vector<float>> momentum_buffers_;
};

}  // namespace ckpt::optim

#pragma once

// The state every benchmark saves: layers of Gaussian weights with their Adam
// moments, in float32 or bfloat16, described for ckpt like a user's model.
// Shared by the Google Benchmark suite and the comparison tool so that both
// measure the same bytes.

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/ckpt.hpp"

namespace bench {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

inline std::vector<float> gaussian(std::size_t count, float sigma, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> values(count);
  for (float& value : values) value = normal(rng);
  return values;
}

inline ckpt::bfloat16 to_bfloat16(float value) {  // round to nearest even
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return ckpt::bfloat16{static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16)};
}

template <class T>
T convert(float value) {
  if constexpr (std::is_same_v<T, ckpt::bfloat16>) {
    return to_bfloat16(value);
  } else {
    return static_cast<T>(value);
  }
}

// One layer: weights N(0, 0.02) as after initialisation; Adam's first moment
// a small Gaussian and its second moment the square of one (both as after many
// steps of noisy gradients with sigma 1e-3).
template <class T>
struct Layer {
  std::uint64_t rows = 0, cols = 0;
  std::vector<T> weight, exp_avg, exp_avg_sq;

  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {rows, cols}))("exp_avg", ckpt::shaped(exp_avg, {rows, cols}));
    ar("exp_avg_sq", ckpt::shaped(exp_avg_sq, {rows, cols}));
  }
};

template <class T>
struct ModelState {
  std::vector<Layer<T>> layers;
  std::vector<std::string> names;  // "layer00", ...

  template <class Archive>
  void describe(Archive& ar) {
    for (std::size_t i = 0; i < layers.size(); ++i) ar(names[i], layers[i]);
  }

  std::uint64_t tensor_bytes() const {
    std::uint64_t total = 0;
    for (const Layer<T>& layer : layers) total += 3 * layer.weight.size() * sizeof(T);
    return total;
  }

  // Each tensor's memory as (data, bytes), in the order a save writes them:
  // what a raw writer given the same bytes writes, one write() each.
  std::vector<std::pair<const void*, std::size_t>> buffers() const {
    std::vector<std::pair<const void*, std::size_t>> buffers;
    for (const Layer<T>& layer : layers) {
      for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
        buffers.emplace_back(tensor->data(), tensor->size() * sizeof(T));
      }
    }
    return buffers;
  }
};

// About `float32_bytes` of float32 state (or the same element count in T) in
// `layer_count` layers of three [rows, 1024] tensors; at least one row each.
template <class T>
ModelState<T> make_state(std::uint64_t float32_bytes, std::size_t layer_count, std::uint64_t seed = 42) {
  constexpr std::uint64_t cols = 1024;
  const std::uint64_t elements_per_tensor = float32_bytes / 4 / (3 * layer_count);
  const std::uint64_t rows = elements_per_tensor / cols > 0 ? elements_per_tensor / cols : 1;
  ModelState<T> state;
  for (std::size_t i = 0; i < layer_count; ++i) {
    Layer<T> layer;
    layer.rows = rows;
    layer.cols = cols;
    const std::size_t count = rows * cols;
    const auto fill = [&](std::vector<T>& target, const std::vector<float>& source, bool squared) {
      target.resize(count);
      for (std::size_t k = 0; k < count; ++k) target[k] = convert<T>(squared ? source[k] * source[k] : source[k]);
    };
    fill(layer.weight, gaussian(count, 0.02f, seed + 3 * i), false);
    fill(layer.exp_avg, gaussian(count, 1e-4f, seed + 3 * i + 1), false);
    fill(layer.exp_avg_sq, gaussian(count, 1e-3f, seed + 3 * i + 2), true);
    state.layers.push_back(std::move(layer));
    std::string name = std::to_string(i);
    state.names.push_back("layer" + std::string(name.size() < 2 ? 2 - name.size() : 0, '0') + name);
  }
  return state;
}

// `steps` Adam steps on noisy gradients (sigma 1e-3) of one layer: what
// moves weights and moments between the saves of a training run.
inline void adam_steps(Layer<float>& layer, int steps, std::uint64_t& seed) {
  constexpr float lr = 1e-4f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f;
  for (int step = 0; step < steps; ++step) {
    const std::vector<float> gradient = gaussian(layer.weight.size(), 1e-3f, ++seed);
    for (std::size_t i = 0; i < layer.weight.size(); ++i) {
      layer.exp_avg[i] = beta1 * layer.exp_avg[i] + (1 - beta1) * gradient[i];
      layer.exp_avg_sq[i] = beta2 * layer.exp_avg_sq[i] + (1 - beta2) * gradient[i] * gradient[i];
      layer.weight[i] -= lr * layer.exp_avg[i] / (std::sqrt(layer.exp_avg_sq[i]) + eps);
    }
  }
}

}  // namespace bench

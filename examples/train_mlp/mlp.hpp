#pragma once

// The training side of the demo: a deterministic synthetic regression task,
// a two-layer MLP, and the whole training state described for checkpoints.
// Everything that decides the next step is in TrainState (weights, Adam's
// moments, the random engine and the data order), so a resumed run is
// bit-exact with one that never stopped.

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "ckpt/ckpt.hpp"
// After ckpt, which includes it with XXH_INLINE_ALL: nothing to link.
#include <xxhash.h>

namespace demo {

constexpr std::size_t inputs = 8, hidden = 32, samples = 512, batch_size = 16;

// Fixed data: a teacher function of pseudo-random inputs. Generated from a
// constant, not from the state, so it never needs saving. The validation set
// is drawn from another seed: samples the training never sees.
struct Dataset {
  std::vector<float> x, y;

  explicit Dataset(std::uint64_t seed = 0x9E3779B97F4A7C15ull, std::size_t count = samples)
      : x(count * inputs), y(count) {
    for (float& value : x) value = uniform(seed) * 2.0f - 1.0f;
    for (std::size_t i = 0; i < count; ++i) {
      const float* row = &x[i * inputs];
      y[i] = std::sin(2.0f * row[0] - row[1]) + 0.5f * row[2] * row[3] - 0.3f * row[4];
    }
  }
  static Dataset validation() { return Dataset(0xD1B54A32D192ED03ull, 128); }

 private:
  static float uniform(std::uint64_t& state) {  // splitmix64: the same numbers on every platform
    std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return static_cast<float>((z ^ (z >> 31)) >> 40) / static_cast<float>(1 << 24);
  }
};

struct Mlp {
  // The weights' shapes, which Adam's moments take too.
  static inline const ckpt::Shape w1_shape{hidden, inputs}, w2_shape{1, hidden};
  std::vector<float> w1 = std::vector<float>(hidden * inputs), b1 = std::vector<float>(hidden);
  std::vector<float> w2 = std::vector<float>(hidden), b2 = std::vector<float>(1);

  template <class Archive>
  void describe(Archive& ar) {
    ar("w1", ckpt::shaped(w1, w1_shape))("b1", b1)("w2", ckpt::shaped(w2, w2_shape))("b2", b2);
  }
};

// The network's output for one sample; fills `h` with the hidden activations.
inline float forward(const Mlp& m, const float* x, float (&h)[hidden]) {
  float out = m.b2[0];
  for (std::size_t j = 0; j < hidden; ++j) {
    float sum = m.b1[j];
    for (std::size_t i = 0; i < inputs; ++i) sum += m.w1[j * inputs + i] * x[i];
    h[j] = std::tanh(sum);
    out += m.w2[j] * h[j];
  }
  return out;
}

// Mean squared error over a whole dataset.
inline float evaluate(const Mlp& m, const Dataset& data) {
  double total = 0;
  float h[hidden];
  for (std::size_t sample = 0; sample < data.y.size(); ++sample) {
    const float error = forward(m, &data.x[sample * inputs], h) - data.y[sample];
    total += static_cast<double>(error) * error;
  }
  return static_cast<float>(total / static_cast<double>(data.y.size()));
}

struct Gradients {
  std::vector<float> w1 = std::vector<float>(hidden * inputs), b1 = std::vector<float>(hidden);
  std::vector<float> w2 = std::vector<float>(hidden), b2 = std::vector<float>(1);
};

struct TrainState {
  Mlp model;
  ckpt::optim::Adam adam{ckpt::optim::AdamOptions{1e-2f}};
  std::mt19937_64 rng{2024};
  std::vector<std::uint32_t> order;  // this epoch's sample order
  std::uint64_t cursor = 0;          // next position in `order`
  std::uint64_t epoch = 0;
  std::uint64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model", model)("optimizer", adam)("data/rng", rng)("data/order", order)("data/cursor", cursor);
    ar("data/epoch", epoch)("step", step);
  }
};

// The hash the demos print at the end: equal hashes, bit-identical weights.
inline std::uint64_t weights_hash(const Mlp& model) {
  XXH3_state_t* hash = XXH3_createState();
  XXH3_64bits_reset(hash);
  for (const std::vector<float>* part : {&model.w1, &model.b1, &model.w2, &model.b2}) {
    XXH3_64bits_update(hash, part->data(), part->size() * sizeof(float));
  }
  const std::uint64_t digest = XXH3_64bits_digest(hash);
  XXH3_freeState(hash);
  return digest;
}

// The engine's raw output, mapped by hand: std:: distributions differ between
// standard libraries, and a checkpoint should resume identically anywhere.
inline float uniform(std::mt19937_64& rng, float limit) {
  return (static_cast<float>(rng() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f) * limit;
}

inline void initialize(TrainState& state) {
  state = TrainState{};
  for (float& w : state.model.w1) w = uniform(state.rng, 1.0f / std::sqrt(float(inputs)));
  for (float& w : state.model.w2) w = uniform(state.rng, 1.0f / std::sqrt(float(hidden)));
}

// A state with a data order (rng, order, cursor, epoch), such as TrainState.
template <class State>
void shuffle_epoch(State& state) {
  state.order.resize(samples);
  for (std::uint32_t i = 0; i < samples; ++i) state.order[i] = i;
  for (std::size_t i = samples - 1; i > 0; --i) std::swap(state.order[i], state.order[state.rng() % (i + 1)]);
  state.cursor = 0;
}

// Makes room for the next mini-batch in the epoch's order, starting a new
// epoch (a new shuffle) when this one is used up.
template <class State>
void prepare_batch(State& state) {
  if (state.order.empty() || state.cursor + batch_size > state.order.size()) {
    if (!state.order.empty()) ++state.epoch;
    shuffle_epoch(state);
  }
}

// Adds one sample's share of the gradient of the mini-batch's mean squared
// error to `g`; returns its share of the loss.
inline float accumulate_sample(const Mlp& m, const Dataset& data, std::uint32_t sample, Gradients& g) {
  const float* x = &data.x[sample * inputs];
  float h[hidden];
  const float error = forward(m, x, h) - data.y[sample];
  const float d_out = 2.0f * error / batch_size;
  g.b2[0] += d_out;
  for (std::size_t j = 0; j < hidden; ++j) {
    g.w2[j] += d_out * h[j];
    const float d_hidden = d_out * m.w2[j] * (1.0f - h[j] * h[j]);
    g.b1[j] += d_hidden;
    for (std::size_t i = 0; i < inputs; ++i) g.w1[j * inputs + i] += d_hidden * x[i];
  }
  return error * error / batch_size;
}

// One Adam step on the next mini-batch; returns the batch's mean squared error.
inline float train_step(TrainState& state, const Dataset& data) {
  prepare_batch(state);
  Gradients g;
  float loss = 0;
  for (std::size_t b = 0; b < batch_size; ++b)
    loss += accumulate_sample(state.model, data, state.order[state.cursor++], g);
  Mlp& p = state.model;
  state.adam.step({ckpt::optim::parameter("w1", p.w1, g.w1, Mlp::w1_shape), ckpt::optim::parameter("b1", p.b1, g.b1),
                   ckpt::optim::parameter("w2", p.w2, g.w2, Mlp::w2_shape), ckpt::optim::parameter("b2", p.b2, g.b2)});
  ++state.step;
  return loss;
}

}  // namespace demo

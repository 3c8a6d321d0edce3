#pragma once

#include <cstdint>
#include <vector>

// A training state whose every value follows from its step, so a test can
// tell from a restored state exactly which save it came from.
struct StepState {
  std::vector<float> weights;
  std::uint64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("weights", weights);
    ar("step", step);
  }
};

inline StepState state_at(std::uint64_t step, std::size_t size = 64) {
  StepState state;
  state.weights.resize(size);
  for (std::size_t i = 0; i < size; ++i) state.weights[i] = static_cast<float>(step) * 1000.0f + 0.25f * i;
  state.step = step;
  return state;
}

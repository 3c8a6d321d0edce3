// A training loop that checkpoints through ckpt::CheckpointManager and resumes
// where it stopped. Run it, stop it (kill it, or --stop-at 130 to pretend it
// crashed there), run it again: it continues from the newest checkpoint and
// ends with exactly the weights of a run that never stopped.
//
//   manager_loop [--stop-at STEP]
//
// SIGTERM or SIGUSR1 (what clusters send before preempting a job) makes it
// save at the end of the current step and exit.
#include <ckpt/ckpt.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

// Everything a resumed run needs to continue bit-exactly, the random engine included.
struct TrainState {
  std::vector<float> weights = std::vector<float>(4, 0.0f);
  std::vector<float> velocity = std::vector<float>(4, 0.0f);  // SGD momentum
  std::uint64_t step = 0;
  std::mt19937_64 rng{2024};
  template <class Archive>
  void describe(Archive& ar) {
    ar("model/weights", weights);
    ar("optimizer/velocity", velocity);
    ar("step", step);
    ar("data_rng", rng);
  }
};

// One SGD-with-momentum step of linear regression on a fresh random sample.
double train_step(TrainState& state) {
  static const float true_weights[4] = {0.5f, -1.0f, 2.0f, 0.25f};
  std::normal_distribution<float> normal(0.0f, 1.0f);
  float x[4], error = 0.0f;
  for (int i = 0; i < 4; ++i) x[i] = normal(state.rng);
  for (int i = 0; i < 4; ++i) error += (state.weights[i] - true_weights[i]) * x[i];
  for (int i = 0; i < 4; ++i) {
    state.velocity[i] = 0.9f * state.velocity[i] + error * x[i];
    state.weights[i] -= 0.01f * state.velocity[i];
  }
  return 0.5 * error * error;
}

int main(int argc, char** argv) {
  const std::uint64_t total_steps = 300;
  const std::uint64_t stop_at =
      argc == 3 && std::strcmp(argv[1], "--stop-at") == 0 ? std::strtoull(argv[2], nullptr, 10) : 0;

  ckpt::ManagerOptions options;
  options.save_policy.every_steps = 50;
  options.save_policy.on_preemption = true;
  options.retention.max_to_keep = 3;
  ckpt::CheckpointManager manager("manager_loop_checkpoints", options);

  TrainState state;
  const ckpt::RestoreResult resumed = manager.restore_or_initialize(state, [](TrainState&) {});
  std::printf(resumed.restored ? "resumed at step %llu\n" : "starting at step %llu\n",
              static_cast<unsigned long long>(state.step));

  while (state.step < total_steps) {
    const double loss = train_step(state);
    ++state.step;
    if (state.step % 50 == 0) std::printf("step %llu loss %.6f\n", static_cast<unsigned long long>(state.step), loss);
    manager.maybe_save(state.step, state);
    if (manager.preemption_requested()) {
      std::printf("preempted: saved step %llu, exiting\n", static_cast<unsigned long long>(state.step));
      return 0;
    }
    if (state.step == stop_at) {
      std::printf("stopping at step %llu without saving, as a crash would\n",
                  static_cast<unsigned long long>(state.step));
      return 0;
    }
  }
  manager.wait();
  std::printf("final weights: %a %a %a %a\n", state.weights[0], state.weights[1], state.weights[2], state.weights[3]);
  return 0;
}

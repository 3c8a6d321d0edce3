// A libtorch training loop checkpointed with ckpt::CheckpointManager. The
// model's parameters and buffers, the optimizer's state and the step go into
// one safetensors file, readable from Python; a restarted run continues
// bit-exactly.
//
//   torch_train [--stop-at STEP]   (stop without saving, as a crash would; run again to resume)
#include <ckpt/adapters/torch.hpp>
#include <ckpt/ckpt.hpp>

#include <torch/torch.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

struct TrainState {
  torch::nn::Sequential model;
  torch::optim::Adam optimizer;
  std::int64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model", model);          // model/0.weight, model/1.running_mean, ...
    ar("optimizer", optimizer);  // optimizer/state/0/exp_avg, optimizer/param_groups/0/lr, ...
    ar("step", step);
  }
};

int main(int argc, char** argv) {
  const std::int64_t total_steps = 200;
  const std::int64_t stop_at = argc == 3 && std::strcmp(argv[1], "--stop-at") == 0 ? std::atoll(argv[2]) : -1;
  torch::set_num_threads(1);  // a fixed reduction order, so that runs are comparable bit for bit

  torch::manual_seed(0);
  torch::nn::Sequential model(torch::nn::Linear(8, 32), torch::nn::BatchNorm1d(32), torch::nn::ReLU(),
                              torch::nn::Linear(32, 1));
  TrainState state{model, torch::optim::Adam(model->parameters(), torch::optim::AdamOptions(1e-2)), 0};
  const torch::Tensor inputs = torch::randn({256, 8});
  const torch::Tensor targets = inputs.sum(1, /*keepdim=*/true).sin();

  ckpt::ManagerOptions options;
  options.save_policy.every_steps = 50;
  options.save_policy.on_preemption = true;
  options.retention.max_to_keep = 2;
  ckpt::CheckpointManager manager("torch_train_checkpoints", options);
  // A first run starts from the freshly initialised state; a restarted one continues.
  if (manager.restore_or_initialize(state, [](TrainState&) {}).restored) {
    std::printf("resumed at step %lld\n", static_cast<long long>(state.step));
  }

  while (state.step < total_steps) {
    // Mini-batches follow from the step alone, so a resumed run sees the same ones.
    const torch::Tensor batch = torch::arange(32, torch::kLong) + (state.step % 8) * 32;
    state.optimizer.zero_grad();
    const torch::Tensor loss =
        torch::mse_loss(model->forward(inputs.index_select(0, batch)), targets.index_select(0, batch));
    loss.backward();
    state.optimizer.step();
    ++state.step;
    if (state.step % 50 == 0)
      std::printf("step %lld loss %.6f\n", static_cast<long long>(state.step), loss.item<double>());
    manager.maybe_save(static_cast<std::uint64_t>(state.step), state);
    if (manager.preemption_requested() || state.step == stop_at) return 0;
  }
  manager.wait();
  double checksum = 0;  // identical, to the last bit, for interrupted and uninterrupted runs
  for (const torch::Tensor& parameter : model->parameters())
    checksum += parameter.to(torch::kDouble).sum().item<double>();
  std::printf("final parameter checksum: %a\n", checksum);
  return 0;
}

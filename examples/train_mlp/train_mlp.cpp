// Trains a small MLP and checkpoints it through ckpt::CheckpointManager.
//
//   train_mlp --dir runs/mlp --steps 300 --save-every 25 --keep 3 --codec shuffle+zstd --async
//   train_mlp --dir runs/mlp --incremental   # each save writes only the tensors that changed
//
// Run it again with more --steps, or kill it at any moment and restart it: it
// resumes from the newest valid checkpoint in --dir, and the final weights are
// bit-identical to those of a run that never stopped. SIGTERM or SIGUSR1
// makes it save at the next step and exit.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ckpt/ckpt.hpp"
#include "flags.hpp"
#include "mlp.hpp"

namespace {

std::string file_name(const std::string& path) { return path.substr(path.rfind('/') + 1); }

void print_save(const ckpt::SaveEvent& event) {
  std::string line = "saved step " + std::to_string(event.step) + " -> " + file_name(event.path) + " (" +
                     std::to_string(event.file_bytes / 1024.0).substr(0, 4) + " KiB, " +
                     std::to_string(event.seconds * 1e3).substr(0, 4) + " ms)";
  for (const std::string& deleted : event.deleted) line += ", deleted " + file_name(deleted);
  std::printf("%s\n", line.c_str());
}

}  // namespace

int main(int argc, char** argv) {
  demo::Flags defaults;
  defaults.dir = "train_mlp_checkpoints";
  const demo::Flags flags = demo::parse_flags(argc, argv, "train_mlp", defaults);
  ckpt::ManagerOptions options;
  options.save_policy.every_steps = flags.save_every;
  options.save_policy.on_preemption = true;
  options.retention.max_to_keep = flags.keep;
  options.save.codecs = ckpt::CodecPolicy(flags.codec);
  options.async = flags.async;
  options.incremental = flags.incremental;
  options.on_save = print_save;

  try {
    ckpt::CheckpointManager manager(flags.dir, options);
    demo::TrainState state;
    const ckpt::RestoreResult resumed = manager.restore_or_initialize(state, demo::initialize);
    for (const ckpt::SkippedCheckpoint& skipped : resumed.skipped) {
      std::printf("skipped step %llu: %s\n", static_cast<unsigned long long>(skipped.step), skipped.reason.c_str());
    }
    if (resumed.restored) {
      std::printf("resumed from step %llu (%s)\n", static_cast<unsigned long long>(state.step),
                  file_name(resumed.checkpoint.path).c_str());
    } else {
      std::printf("no checkpoint in %s: starting at step 0\n", flags.dir.c_str());
    }

    const demo::Dataset data;
    const demo::Dataset validation = demo::Dataset::validation();
    // Each save records the mean training loss since the previous save and
    // the validation loss: the metrics `ckpt ls`, best-K retention and plots read.
    double loss_sum = 0;
    std::uint64_t loss_steps = 0;
    const auto step_info = [&] {
      ckpt::StepInfo info{state.epoch, {{"val_loss", demo::evaluate(state.model, validation)}}};
      if (loss_steps > 0) info.metrics["loss"] = loss_sum / static_cast<double>(loss_steps);
      loss_sum = 0;
      loss_steps = 0;
      return info;
    };
    std::uint64_t saved_step = resumed.restored ? state.step : UINT64_MAX;
    while (state.step < flags.steps && !manager.preemption_requested()) {
      const float loss = demo::train_step(state, data);
      loss_sum += loss;
      ++loss_steps;
      if (state.step % 100 == 0)
        std::printf("step %llu loss %.5f\n", static_cast<unsigned long long>(state.step), loss);
      if (manager.should_save(state.step)) {  // asked first, so the validation pass runs only for saves
        if (manager.maybe_save(state.step, state, step_info())) saved_step = state.step;
      }
    }
    if (saved_step != state.step) manager.save(state.step, state, step_info());
    manager.wait();
    if (manager.preemption_requested()) {
      std::printf("preempted: saved step %llu, exiting\n", static_cast<unsigned long long>(state.step));
      return 0;
    }
    std::printf("final step=%llu weights_xxh3=%016llx\n", static_cast<unsigned long long>(state.step),
                static_cast<unsigned long long>(demo::weights_hash(state.model)));
  } catch (const ckpt::Error& error) {
    std::fprintf(stderr, "train_mlp: %s\n", error.what());
    return 1;
  }
  return 0;
}

// The MLP of train_mlp, trained data parallel over MPI, with the first
// layer's weights split by rows across ranks and Adam's moments of the other
// parameters sharded across ranks (ZeRO-1), checkpointed every K steps by a
// ckpt::DistributedCheckpointManager: the newest --keep steps are kept,
// --async saves in the background, and SIGTERM or SIGUSR1 sent to any rank
// makes every rank save at the next step and stop.
//
//   mpirun -np 4 train_mlp_mpi --dir runs/mlp --steps 300 --save-every 25 --keep 2 --async
//
// Kill it at any moment and start it again with any number of ranks: it
// resumes from the newest committed checkpoint in --dir that verifies,
// resharding the state to the new world size, and ends with the same weights
// as a run that never stopped. The gradient of each step is the sum of a fixed number of
// micro-batches in a fixed order, so it does not depend on how many ranks
// computed it.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "ckpt/adapters/mpi.hpp"
#include "ckpt/distributed.hpp"
#include "flags.hpp"
#include "mlp.hpp"

namespace {

constexpr std::size_t micro_batches = 8;  // of batch_size / micro_batches samples each
static_assert(demo::batch_size % micro_batches == 0);

// One rank's part of the training state. The weights b1, w2 and b2 are
// replicated; w1 is split by rows; the Adam moments of w1 go with its rows,
// those of the others are flat ZeRO-1 ranges of each parameter.
struct ShardedState {
  int rank = 0;
  int world = 1;
  std::vector<float> w1_rows, w1_exp_avg, w1_exp_avg_sq;
  std::vector<float> b1, w2, b2;
  std::map<std::string, std::vector<float>> exp_avg, exp_avg_sq;  // this rank's range of b1, w2, b2
  ckpt::optim::AdamOptions adam{1e-2f};
  std::int64_t adam_step = 0;
  std::mt19937_64 rng;
  std::vector<std::uint32_t> order;
  std::uint64_t cursor = 0, epoch = 0, step = 0;

  ckpt::Split rows() const { return ckpt::even_split(demo::hidden, world, rank); }
  ckpt::Split range_of(const std::vector<float>& parameter) const {
    return ckpt::even_split(parameter.size(), world, rank);
  }

  template <class Archive>
  void describe(Archive& ar) {
    const ckpt::Shape w1_shape{demo::hidden, demo::inputs};
    const ckpt::Shape w1_offsets{rows().begin, 0}, w1_extents{rows().count, demo::inputs};
    ar("model/w1", ckpt::box_shard(w1_rows, w1_shape, w1_offsets, w1_extents))("model/b1", ckpt::replicated(b1))(
        "model/w2", ckpt::shaped(w2, {1, demo::hidden}))("model/b2", ckpt::replicated(b2));
    ar("optimizer/exp_avg/w1", ckpt::box_shard(w1_exp_avg, w1_shape, w1_offsets, w1_extents))(
        "optimizer/exp_avg_sq/w1", ckpt::box_shard(w1_exp_avg_sq, w1_shape, w1_offsets, w1_extents));
    for (auto [name, parameter] : replicated_parameters()) {
      const ckpt::Shape shape = name == "w2" ? ckpt::Shape{1, demo::hidden} : ckpt::Shape{parameter->size()};
      const ckpt::Split range = range_of(*parameter);
      ar("optimizer/exp_avg/" + name, ckpt::flat_shard(exp_avg[name], shape, range.begin, range.count))(
          "optimizer/exp_avg_sq/" + name, ckpt::flat_shard(exp_avg_sq[name], shape, range.begin, range.count));
    }
    ar("optimizer/options", adam)("optimizer/step", adam_step);
    ar("data/rng", rng)("data/order", order)("data/cursor", cursor)("data/epoch", epoch)("step", step);
  }

  std::vector<std::pair<std::string, std::vector<float>*>> replicated_parameters() {
    return {{"b1", &b1}, {"w2", &w2}, {"b2", &b2}};
  }
};

// This rank's part of the single-process demo's initial state.
ShardedState initial_state(int rank, int world) {
  demo::TrainState full;
  demo::initialize(full);
  ShardedState state;
  state.rank = rank;
  state.world = world;
  const ckpt::Split rows = state.rows();
  state.w1_rows.assign(full.model.w1.begin() + rows.begin * demo::inputs,
                       full.model.w1.begin() + (rows.begin + rows.count) * demo::inputs);
  state.w1_exp_avg.assign(state.w1_rows.size(), 0.0f);
  state.w1_exp_avg_sq.assign(state.w1_rows.size(), 0.0f);
  state.b1 = full.model.b1;
  state.w2 = full.model.w2;
  state.b2 = full.model.b2;
  for (auto [name, parameter] : state.replicated_parameters()) {
    state.exp_avg[name].assign(state.range_of(*parameter).count, 0.0f);
    state.exp_avg_sq[name].assign(state.range_of(*parameter).count, 0.0f);
  }
  state.rng = full.rng;
  return state;
}

std::string bytes_of(const float* values, std::size_t count) {
  return std::string(reinterpret_cast<const char*>(values), count * sizeof(float));
}

// Every rank's floats, concatenated in rank order.
std::vector<float> all_gather_floats(ckpt::Communicator& world, const float* values, std::size_t count) {
  std::vector<float> all;
  for (const std::string& part : world.all_gather(bytes_of(values, count))) {
    const auto* first = reinterpret_cast<const float*>(part.data());
    all.insert(all.end(), first, first + part.size() / sizeof(float));
  }
  return all;
}

std::vector<float> flatten(const demo::Gradients& g) {
  std::vector<float> flat;
  for (const std::vector<float>* part : {&g.w1, &g.b1, &g.w2, &g.b2})
    flat.insert(flat.end(), part->begin(), part->end());
  return flat;
}

demo::Mlp full_model(ckpt::Communicator& world, const ShardedState& state) {
  demo::Mlp model;
  model.w1 = all_gather_floats(world, state.w1_rows.data(), state.w1_rows.size());
  model.b1 = state.b1;
  model.w2 = state.w2;
  model.b2 = state.b2;
  return model;
}

// One Adam step on the next mini-batch; returns its mean squared error. The
// result depends on the world size in no way: each micro-batch's gradient is
// computed by one rank, and every rank sums them all in micro-batch order.
float train_step(ckpt::Communicator& world, ShardedState& state, const demo::Dataset& data) {
  demo::prepare_batch(state);
  const demo::Mlp model = full_model(world, state);
  constexpr std::size_t samples_per_micro_batch = demo::batch_size / micro_batches;
  std::string mine;
  for (std::size_t micro = static_cast<std::size_t>(state.rank); micro < micro_batches; micro += state.world) {
    demo::Gradients g;
    float loss = 0;
    for (std::size_t s = 0; s < samples_per_micro_batch; ++s) {
      loss += demo::accumulate_sample(model, data, state.order[state.cursor + micro * samples_per_micro_batch + s], g);
    }
    std::vector<float> flat = flatten(g);
    flat.push_back(loss);
    mine += bytes_of(flat.data(), flat.size());
  }
  const std::vector<std::string> gathered = world.all_gather(mine);
  const std::size_t width = flatten(demo::Gradients{}).size() + 1;  // the gradient and the loss
  std::vector<float> sum(width, 0.0f);
  for (std::size_t micro = 0; micro < micro_batches; ++micro) {
    const std::string& from = gathered[micro % state.world];
    const auto* values = reinterpret_cast<const float*>(from.data()) + (micro / state.world) * width;
    for (std::size_t i = 0; i < width; ++i) sum[i] += values[i];
  }
  state.cursor += demo::batch_size;
  ++state.adam_step;
  // w1: this rank's rows. The others: this rank's range, then re-replicated.
  const float* gradient = sum.data();
  const ckpt::Split rows = state.rows();
  ckpt::optim::adam_update(state.adam, state.adam_step, state.w1_rows.data(), gradient + rows.begin * demo::inputs,
                           state.w1_exp_avg.data(), state.w1_exp_avg_sq.data(), state.w1_rows.size());
  gradient += demo::hidden * demo::inputs;
  for (auto [name, parameter] : state.replicated_parameters()) {
    const ckpt::Split range = state.range_of(*parameter);
    ckpt::optim::adam_update(state.adam, state.adam_step, parameter->data() + range.begin, gradient + range.begin,
                             state.exp_avg[name].data(), state.exp_avg_sq[name].data(), range.count);
    *parameter = all_gather_floats(world, parameter->data() + range.begin, range.count);
    gradient += parameter->size();
  }
  ++state.step;
  return sum.back();
}

}  // namespace

int main(int argc, char** argv) {
  ckpt::MpiSession mpi(argc, argv);
  ckpt::MpiCommunicator world;
  demo::Flags defaults;
  defaults.dir = "train_mlp_mpi_checkpoints";
  defaults.keep = 2;
  const demo::Flags flags = demo::parse_flags(argc, argv, "train_mlp_mpi", defaults);
  const bool lead = world.rank() == 0;
  try {
    ckpt::ManagerOptions options;
    options.name_template = "step-{step:08}";
    options.save_policy.every_steps = flags.save_every;
    options.save_policy.at_steps = {flags.steps};
    options.save_policy.on_preemption = true;  // SIGTERM or SIGUSR1 to any rank: every rank saves, then stops
    options.retention.max_to_keep = flags.keep;
    options.save.codecs = ckpt::CodecPolicy(flags.codec);
    options.async = flags.async;
    options.incremental = flags.incremental;
    // Called on every rank once a save is committed (and the old ones
    // rotated): with --async, on the background thread.
    options.on_save = [lead](const ckpt::SaveEvent& event) {
      if (lead) std::printf("saved step %llu\n", static_cast<unsigned long long>(event.step));
      std::fflush(stdout);
    };
    ckpt::DistributedCheckpointManager manager(world, flags.dir, options);
    // The initial state in this job's split: what a fresh start trains from,
    // and the shapes a resume loads into, whatever split the checkpoint was
    // saved in.
    ShardedState state = initial_state(world.rank(), world.size());
    const ckpt::RestoreResult resumed = manager.restore_or_initialize(state, [](ShardedState&) {});
    if (lead) {
      for (const ckpt::SkippedCheckpoint& skipped : resumed.skipped) {
        std::printf("skipped step %llu: %s\n", static_cast<unsigned long long>(skipped.step), skipped.reason.c_str());
      }
      if (resumed.restored) {
        std::printf("resumed from step %llu (%s) with %d ranks\n", static_cast<unsigned long long>(state.step),
                    resumed.checkpoint.path.substr(flags.dir.size() + 1).c_str(), world.size());
      } else {
        std::printf("no checkpoint in %s: starting at step 0 with %d ranks\n", flags.dir.c_str(), world.size());
      }
    }

    const demo::Dataset data;
    while (state.step < flags.steps && !manager.preemption_requested()) {
      const float loss = train_step(world, state, data);
      if (lead && state.step % 100 == 0) {
        std::printf("step %llu loss %.5f\n", static_cast<unsigned long long>(state.step), loss);
      }
      manager.maybe_save(state.step, state);
      std::fflush(stdout);
    }
    manager.wait();
    const std::uint64_t hash = demo::weights_hash(full_model(world, state));
    if (lead) {
      std::printf("final step=%llu weights_xxh3=%016llx\n", static_cast<unsigned long long>(state.step),
                  static_cast<unsigned long long>(hash));
    }
  } catch (const ckpt::Error& error) {
    std::fprintf(stderr, "train_mlp_mpi (rank %d): %s\n", world.rank(), error.what());
    return 1;
  }
  return 0;
}

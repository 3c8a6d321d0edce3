// The incremental-save target of issue 15, side by side with a full save of
// the same state in the same run: a state whose bytes are 90% frozen layers
// (never changed) and 10% trained ones (changed before every save) is saved
// incrementally against the previous save, writing at most 12% of the full
// save's bytes in at most 20% of its time. Each repetition saves full, then
// incrementally, back to back; ratios are medians of the per-repetition
// ratios. The disk's limit is measured in the same run: write + fsync of the
// full save's bytes with pwrite in 4 MiB pieces.
//
// Then the xor-delta ratio, reported whatever it is: the stored bytes of
// consecutive saves with xor-delta against the parent, over those of the same
// states saved whole with shuffle+zstd, for the train_mlp demo (saves 50
// steps apart) and for a synthetic Adam run (layers of Gaussian weights with
// Adam's moments, 10 Adam steps of noisy gradients between saves).
//
//   ckpt_incremental DIR [MiB] [repetitions]     (default 1024 MiB, 5 repetitions)

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_state.hpp"
#include "ckpt/ckpt.hpp"
#include "mlp.hpp"

namespace {

using bench::Clock;
using bench::seconds_since;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "ckpt_incremental: %s\n", what.c_str());
  std::exit(1);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 ? values[middle] : (values[middle - 1] + values[middle]) / 2;
}

// The disk's limit: `bytes` written with pwrite in 4 MiB pieces, then fsynced.
double write_limit_seconds(const std::string& path, std::uint64_t bytes) {
  std::vector<char> piece(std::size_t(4) << 20, 'x');
  const auto start = Clock::now();
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) fail("cannot create " + path);
  for (std::uint64_t done = 0; done < bytes;) {
    const std::size_t size = static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), bytes - done));
    if (::pwrite(fd, piece.data(), size, static_cast<off_t>(done)) != static_cast<ssize_t>(size)) fail("pwrite failed");
    done += size;
  }
  if (::fsync(fd) != 0) fail("fsync failed");
  ::close(fd);
  const double seconds = seconds_since(start);
  std::filesystem::remove(path);
  return seconds;
}

// Frozen layers holding 90% of the bytes and trained ones holding 10%.
struct FineTune {
  bench::ModelState<float> frozen;
  bench::ModelState<float> trained;

  template <class Archive>
  void describe(Archive& ar) {
    ar("frozen", frozen)("trained", trained);
  }

  // A training step's worth of change to every trained value.
  void step(int seed) {
    for (bench::Layer<float>& layer : trained.layers) {
      for (std::vector<float>* values : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
        for (std::size_t i = 0; i < values->size(); ++i) (*values)[i] += 1e-6f * float((i + seed) % 7);
      }
    }
  }
};

// The stored bytes of the tensors of a file.
std::uint64_t stored_tensor_bytes(const std::string& path) {
  std::uint64_t bytes = 0;
  const ckpt::Reader reader(path);
  for (const ckpt::TensorInfo& info : reader.tensors()) bytes += info.stored_bytes;
  return bytes;
}

// `saves` consecutive saves of `state`, `advance` run between them: each
// saved whole with shuffle+zstd and, against the previous save, with
// xor-delta. Prints the ratio of the summed stored bytes, saves 2 to the last
// (the first has no parent).
template <class State, class Advance>
void xor_delta_ratio(const char* what, const std::string& dir, State& state, int saves, Advance advance) {
  ckpt::SaveOptions whole;
  whole.codecs = "shuffle+zstd";
  whole.incremental.content_hashes = true;
  ckpt::SaveOptions delta = whole;
  delta.incremental.xor_delta = true;
  delta.incremental.full_every = std::size_t(saves) + 1;
  delta.incremental.max_chain_fraction = 1e9;
  std::uint64_t whole_bytes = 0, delta_bytes = 0;
  std::string parent;
  for (int save = 0; save < saves; ++save) {
    const std::string whole_path = dir + "/whole-" + std::to_string(save) + ".ckpt";
    const std::string delta_path = dir + "/delta-" + std::to_string(save) + ".ckpt";
    ckpt::Checkpoint<State>(whole).save(whole_path, state);
    delta.incremental.parent = parent;
    ckpt::Checkpoint<State>(save == 0 ? whole : delta).save(delta_path, state);
    if (save > 0) {
      whole_bytes += stored_tensor_bytes(whole_path);
      delta_bytes += stored_tensor_bytes(delta_path);
    }
    State restored = state;
    ckpt::Checkpoint<State>().load(delta_path, restored);  // bit-exact, checked by the load's checksums
    parent = delta_path;
    advance(state);
  }
  std::printf("%-34s xor-delta %10llu B, shuffle+zstd %10llu B: ratio %.3f\n", what,
              static_cast<unsigned long long>(delta_bytes), static_cast<unsigned long long>(whole_bytes),
              double(delta_bytes) / double(whole_bytes));
  for (int save = 0; save < saves; ++save) {
    std::filesystem::remove(dir + "/whole-" + std::to_string(save) + ".ckpt");
    std::filesystem::remove(dir + "/delta-" + std::to_string(save) + ".ckpt");
  }
}

// Adam on noisy gradients: what moves weights and moments between saves.
void adam_steps(bench::ModelState<float>& state, int steps, std::uint64_t& seed) {
  for (int step = 0; step < steps; ++step) {
    for (bench::Layer<float>& layer : state.layers) bench::adam_steps(layer, 1, seed);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) fail("usage: ckpt_incremental DIR [MiB] [repetitions]");
  const std::string dir = argv[1];
  const std::uint64_t mib = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1024;
  const int reps = argc > 3 ? std::atoi(argv[3]) : 5;
  std::filesystem::create_directories(dir);

  FineTune state;
  state.frozen = bench::make_state<float>((mib << 20) * 9 / 10, 9, 1);
  state.trained = bench::make_state<float>((mib << 20) / 10, 1, 100);
  const std::uint64_t total = state.frozen.tensor_bytes() + state.trained.tensor_bytes();
  std::printf("state: %.1f MiB, %.1f%% frozen; %d repetitions\n", double(total) / (1 << 20),
              100.0 * double(state.frozen.tensor_bytes()) / double(total), reps);

  const ckpt::Checkpoint<FineTune> full;  // a plain save: what users do without incremental saves
  ckpt::SaveOptions base_options;
  base_options.incremental.content_hashes = true;
  const ckpt::Checkpoint<FineTune> base(base_options);
  const std::string parent = dir + "/parent.ckpt";
  base.save(parent, state);
  ckpt::SaveOptions child_options = base_options;
  child_options.incremental.parent = parent;
  const ckpt::Checkpoint<FineTune> child(child_options);

  std::vector<double> byte_ratios, time_ratios, limit_ratios, full_seconds, child_seconds, limit_seconds, hash_seconds;
  const ckpt::CollectedState collected = ckpt::collect_state(state);
  volatile std::uint64_t hash_sink = 0;
  for (int rep = 0; rep < reps; ++rep) {
    state.step(rep);
    limit_seconds.push_back(write_limit_seconds(dir + "/limit.bin", total));
    const ckpt::SaveStats full_stats = full.save(dir + "/full.ckpt", state);
    const ckpt::SaveStats child_stats = child.save(dir + "/child.ckpt", state);
    if (child_stats.referenced_bytes != state.frozen.tensor_bytes()) fail("the frozen layers were not all referenced");
    // The floor of an incremental save beside writing what changed: the
    // content hash of every byte, on the save's threads.
    const auto hash_start = Clock::now();
    std::vector<ckpt::detail::ContentHash> hashes(collected.tensors.size());
    ckpt::detail::parallel_for(collected.tensors.size(), 0, [&](std::size_t i) {
      hashes[i] = ckpt::detail::content_hash(collected.tensors[i].view.data(), collected.tensors[i].view.nbytes());
    });
    hash_seconds.push_back(seconds_since(hash_start));
    for (const ckpt::detail::ContentHash& hash : hashes) hash_sink ^= hash.low;  // keeps the hashing
    full_seconds.push_back(full_stats.seconds);
    child_seconds.push_back(child_stats.seconds);
    byte_ratios.push_back(double(child_stats.file_bytes) / double(full_stats.file_bytes));
    time_ratios.push_back(child_stats.seconds / full_stats.seconds);
    limit_ratios.push_back(full_stats.seconds / limit_seconds.back());
  }
  // The child restores bit for bit (checked once, outside the timing).
  FineTune restored = state;
  for (auto& layer : restored.frozen.layers) std::fill(layer.weight.begin(), layer.weight.end(), 0.0f);
  ckpt::Checkpoint<FineTune>().load(dir + "/child.ckpt", restored);
  for (std::size_t i = 0; i < state.frozen.layers.size(); ++i) {
    if (restored.frozen.layers[i].weight != state.frozen.layers[i].weight) fail("the child did not restore");
  }

  const double byte_ratio = median(byte_ratios), time_ratio = median(time_ratios);
  std::printf("limit (pwrite + fsync of %.1f MiB): %.3f s (median)\n", double(total) / (1 << 20),
              median(limit_seconds));
  std::printf("full save:        %.3f s (median), %.2fx the limit's time\n", median(full_seconds),
              median(limit_ratios));
  std::printf("incremental save: %.3f s (median); of which at least the XXH3-128 of all bytes: %.3f s (median)\n",
              median(child_seconds), median(hash_seconds));
  std::printf("bytes written, incremental / full: %.4f  (target <= 0.12: %s)\n", byte_ratio,
              byte_ratio <= 0.12 ? "met" : "MISSED");
  std::printf("time, incremental / full:          %.4f  (target <= 0.20: %s)\n", time_ratio,
              time_ratio <= 0.20 ? "met" : "MISSED");
  for (const char* name : {"/parent.ckpt", "/full.ckpt", "/child.ckpt"}) std::filesystem::remove(dir + name);

  demo::TrainState mlp;
  demo::initialize(mlp);
  const demo::Dataset data;
  xor_delta_ratio("train_mlp, saves 50 steps apart:", dir, mlp, 10, [&](demo::TrainState& state) {
    for (int step = 0; step < 50; ++step) demo::train_step(state, data);
  });
  bench::ModelState<float> adam = bench::make_state<float>(std::uint64_t(64) << 20, 4, 7);
  std::uint64_t seed = 1000;
  xor_delta_ratio("Adam, 64 MiB, saves 10 steps apart:", dir, adam, 5,
                  [&](bench::ModelState<float>& state) { adam_steps(state, 10, seed); });
  return 0;
}

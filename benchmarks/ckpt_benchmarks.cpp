// Google Benchmark suite for ckpt: save and load throughput per codec across
// sizes and tensor counts, the async-save stall, checksum and codec speed,
// compression ratios (counter "ratio"), each save's peak extra memory (counter
// "peak_extra_MiB") and the demo MLP's real state.
//
//   ckpt_benchmarks [--benchmark_filter=REGEX]
//   CKPT_BENCH_LARGE=1 ckpt_benchmarks     # adds 256 MiB and 1 GiB, and 100,000 tensors
//   CKPT_BENCH_DIR=/some/disk ckpt_benchmarks   # where files go (default: the temp directory)
//
// Saves are durable (fsync), as in training. Loads read from the page cache:
// each file was just written. Sizes are float32 bytes; bf16 states hold the
// same number of elements in half the bytes.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "bench_state.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "mlp.hpp"
#include "peak_memory.hpp"

namespace {

const std::vector<std::string> codec_specs = {"raw", "zstd", "shuffle+zstd"};
// The in-memory codec benchmarks also try other levels (ckpt's defaults are level 3).
const std::vector<std::string> codec_levels = {"zstd:1", "zstd", "shuffle+zstd:1", "shuffle+zstd", "shuffle+zstd:-1"};

std::string bench_dir() {
  const char* configured = std::getenv("CKPT_BENCH_DIR");
  const std::filesystem::path dir =
      configured != nullptr ? std::filesystem::path(configured) : std::filesystem::temp_directory_path() / "ckpt-bench";
  std::filesystem::create_directories(dir);
  return dir.string();
}

bool large_sizes() { return std::getenv("CKPT_BENCH_LARGE") != nullptr; }

std::vector<std::int64_t> sizes_mib() {
  std::vector<std::int64_t> sizes = {1, 16, 64};
  if (large_sizes()) sizes.insert(sizes.end(), {256, 1024});
  return sizes;
}

// States are built once per (dtype, size, layers) and kept: generating 1 GiB
// of Gaussians takes longer than saving it.
template <class T>
const bench::ModelState<T>& cached_state(std::uint64_t bytes, std::size_t layers) {
  static std::map<std::pair<std::uint64_t, std::size_t>, bench::ModelState<T>> states;
  auto found = states.find({bytes, layers});
  if (found == states.end())
    found = states.emplace(std::make_pair(bytes, layers), bench::make_state<T>(bytes, layers)).first;
  return found->second;
}

void set_ratio(benchmark::State& state, std::uint64_t logical, std::uint64_t stored) {
  state.counters["ratio"] = stored == 0 ? 1.0 : double(logical) / double(stored);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(logical));
}

// The `peak_extra_MiB` counter: how far the resident set rose during one more
// save, run in a child process (peak_memory.hpp), so memory an earlier
// benchmark left in the allocator cannot hide this save's growth.
template <class Save>
void set_peak_extra(benchmark::State& state, const Save& save) {
  state.counters["peak_extra_MiB"] = double(bench::peak_extra_bytes_in_child(save)) / double(1 << 20);
}

std::string file_for(const benchmark::State& state, const char* what) {
  return bench_dir() + "/" + what + "-" + std::to_string(state.range(0)) + "-" + std::to_string(state.range(1)) +
         ".safetensors";
}

// ---- save and load per codec and size: args (codec index, MiB) ----

// The checkpointer of a (codec index, MiB) case, saving durably or not.
template <class T>
ckpt::Checkpoint<bench::ModelState<T>> checkpoint_for(benchmark::State& state, bool durable) {
  const std::string& spec = codec_specs[std::size_t(state.range(0))];
  state.SetLabel(spec);
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(spec);
  options.durable = durable;
  return ckpt::Checkpoint<bench::ModelState<T>>(options);
}

template <class T>
const bench::ModelState<T>& state_for(const benchmark::State& state) {
  return cached_state<T>(std::uint64_t(state.range(1)) << 20, 8);
}

template <class T>
void BM_Save(benchmark::State& state) {
  const auto& model = state_for<T>(state);
  const auto checkpoint = checkpoint_for<T>(state, true);
  const std::string path = file_for(state, "save");
  ckpt::SaveStats stats;
  for (auto _ : state) stats = checkpoint.save(path, model);
  set_ratio(state, stats.tensor_bytes, stats.file_bytes);
  set_peak_extra(state, [&] { checkpoint.save(path, model); });
  std::filesystem::remove(path);
}

// Loads from the page cache: the file was just written.
template <class T>
void BM_Load(benchmark::State& state) {
  const auto& model = state_for<T>(state);
  const auto checkpoint = checkpoint_for<T>(state, false);
  const std::string path = file_for(state, "load");
  const ckpt::SaveStats stats = checkpoint.save(path, model);
  bench::ModelState<T> target = model;
  for (auto _ : state) checkpoint.load(path, target);
  set_ratio(state, stats.tensor_bytes, stats.file_bytes);
  std::filesystem::remove(path);
}

void codec_and_size_args(benchmark::internal::Benchmark* bm) {
  for (std::int64_t codec = 0; codec < std::int64_t(codec_specs.size()); ++codec) {
    for (std::int64_t mib : sizes_mib()) bm->Args({codec, mib});
  }
  bm->ArgNames({"codec", "MiB"})->Unit(benchmark::kMillisecond);
}

// ---- tensor counts: 16 MiB of float32 in 1 to 100,000 tensors, raw; args (tensors, unused) ----

struct ManyTensors {
  std::vector<std::vector<float>> tensors;
  std::vector<std::string> names;

  template <class Archive>
  void describe(Archive& ar) {
    for (std::size_t i = 0; i < tensors.size(); ++i) ar(names[i], tensors[i]);
  }
};

ManyTensors many_tensors(std::size_t count) {
  const std::size_t total = (std::size_t(16) << 20) / 4;
  const std::vector<float> values = bench::gaussian(total, 0.02f, 7);
  ManyTensors state;
  const std::size_t each = total / count;
  for (std::size_t i = 0; i < count; ++i) {
    state.tensors.emplace_back(values.begin() + std::ptrdiff_t(i * each),
                               values.begin() + std::ptrdiff_t((i + 1) * each));
    state.names.push_back("t" + std::to_string(i));
  }
  return state;
}

void BM_SaveTensorCount(benchmark::State& state) {
  const ManyTensors model = many_tensors(std::size_t(state.range(0)));
  const ckpt::Checkpoint<ManyTensors> checkpoint;
  const std::string path = file_for(state, "count-save");
  for (auto _ : state) checkpoint.save(path, model);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * (std::int64_t(16) << 20));
  set_peak_extra(state, [&] { checkpoint.save(path, model); });
  std::filesystem::remove(path);
}

void BM_LoadTensorCount(benchmark::State& state) {
  ManyTensors model = many_tensors(std::size_t(state.range(0)));
  const ckpt::Checkpoint<ManyTensors> checkpoint;
  const std::string path = file_for(state, "count-load");
  checkpoint.save(path, model);
  for (auto _ : state) checkpoint.load(path, model);
  state.SetBytesProcessed(std::int64_t(state.iterations()) * (std::int64_t(16) << 20));
  std::filesystem::remove(path);
}

void tensor_count_args(benchmark::internal::Benchmark* bm) {
  std::vector<std::int64_t> counts = {1, 100, 10000};
  if (large_sizes()) counts.push_back(100000);
  for (std::int64_t count : counts) bm->Args({count, 0});
  bm->ArgNames({"tensors", ""})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// ---- open + first tensor through the mapping: args (verify, MiB) ----

void BM_OpenFirstTensor(benchmark::State& state) {
  const auto& model = state_for<float>(state);
  const std::string path = file_for(state, "open");
  ckpt::SaveOptions options;
  options.durable = false;
  ckpt::Checkpoint<bench::ModelState<float>>(options).save(path, model);
  for (auto _ : state) {
    const ckpt::Reader reader(path, ckpt::ReadOptions{state.range(0) != 0, 0});
    const ckpt::Tensor first = reader.tensor(reader.tensors().front().name);
    benchmark::DoNotOptimize(first.view().data()[0]);
  }
  std::filesystem::remove(path);
}

void verify_and_size_args(benchmark::internal::Benchmark* bm) {
  for (std::int64_t verify : {0, 1}) {
    for (std::int64_t mib : sizes_mib()) bm->Args({verify, mib});
  }
  bm->ArgNames({"verify", "MiB"})->Unit(benchmark::kMicrosecond)->UseRealTime();
}

// ---- async save: the time save() blocks the training loop (manual time); args (codec, MiB) ----

void BM_AsyncSaveStall(benchmark::State& state) {
  const auto& model = state_for<float>(state);
  const std::string directory = file_for(state, "async") + ".d";
  std::filesystem::remove_all(directory);
  ckpt::ManagerOptions options;
  options.async = true;
  options.retention.max_to_keep = 1;
  options.save.codecs = ckpt::CodecPolicy(codec_specs[std::size_t(state.range(0))]);
  {
    ckpt::CheckpointManager manager(directory, options);
    std::uint64_t step = 0;
    manager.save(step++, model);  // allocates the staging buffer later saves reuse
    manager.wait();
    for (auto _ : state) {
      const auto start = bench::Clock::now();
      manager.save(step++, model);
      state.SetIterationTime(bench::seconds_since(start));
      manager.wait();
    }
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(model.tensor_bytes()));
  state.SetLabel(codec_specs[std::size_t(state.range(0))]);
  std::filesystem::remove_all(directory);
}

void BM_Memcpy(benchmark::State& state) {  // the stall's lower limit
  const auto& model = cached_state<float>(std::uint64_t(state.range(0)) << 20, 8);
  std::vector<float> target(model.tensor_bytes() / 4, 1.0f);
  for (auto _ : state) {
    float* out = target.data();
    for (const auto& layer : model.layers) {
      for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
        out = std::copy(tensor->begin(), tensor->end(), out);
      }
    }
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(model.tensor_bytes()));
}

// ---- checksum and codecs in memory ----

void BM_Checksum(benchmark::State& state) {
  const std::vector<float> data = bench::gaussian(std::size_t(state.range(0)) << 18, 0.02f, 1);
  for (auto _ : state) benchmark::DoNotOptimize(ckpt::detail::xxh3(data.data(), data.size() * 4));
  state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(data.size() * 4));
}

// args (index into codec_levels, threads); 64 MiB of weights + moments.
template <class T>
void run_codec(benchmark::State& state, bool decode) {
  const auto& model = cached_state<T>(std::uint64_t(64) << 20, 1);
  const std::string& spec = codec_levels[std::size_t(state.range(0))];
  const auto codec = ckpt::CodecRegistry::instance().make(spec);
  const unsigned threads = unsigned(state.range(1));
  constexpr std::size_t chunk = std::size_t(4) << 20;
  const auto& layer = model.layers.front();
  std::vector<ckpt::detail::EncodedTensor> encoded;
  std::uint64_t logical = 0, stored = 0;
  for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
    encoded.push_back(ckpt::detail::encode_chunked(*codec, reinterpret_cast<const std::byte*>(tensor->data()),
                                                   tensor->size() * sizeof(T), sizeof(T), chunk, threads));
    logical += tensor->size() * sizeof(T);
    stored += encoded.back().bytes.size();
  }
  std::vector<std::byte> out(layer.weight.size() * sizeof(T));
  for (auto _ : state) {
    std::size_t index = 0;
    for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
      const auto* bytes = reinterpret_cast<const std::byte*>(tensor->data());
      const ckpt::detail::EncodedTensor& done = encoded[index++];
      if (decode) {
        ckpt::detail::decode_chunked(*codec, done.bytes.data(), done.bytes.size(), done.chunk_sizes, chunk, sizeof(T),
                                     out.data(), out.size(), threads);
      } else {
        benchmark::DoNotOptimize(
            ckpt::detail::encode_chunked(*codec, bytes, tensor->size() * sizeof(T), sizeof(T), chunk, threads));
      }
    }
  }
  set_ratio(state, logical, stored);
  state.SetLabel(spec);
}

template <class T>
void BM_Encode(benchmark::State& state) {
  run_codec<T>(state, false);
}

template <class T>
void BM_Decode(benchmark::State& state) {
  run_codec<T>(state, true);
}

void codec_thread_args(benchmark::internal::Benchmark* bm) {
  for (std::int64_t codec = 0; codec < std::int64_t(codec_levels.size()); ++codec) {
    for (std::int64_t threads : {1, 2}) bm->Args({codec, threads});
  }
  bm->ArgNames({"codec", "threads"})->Unit(benchmark::kMillisecond)->UseRealTime();
}

// Per-call cost of parallel_for on two tiny jobs (2 x 64 KiB copies): what
// chunked encoding pays per chunk and loading pays per tensor.
void BM_ParallelForDispatch(benchmark::State& state) {
  std::vector<std::byte> source(64 << 10), target(source.size() * 2);
  const auto copy = [&](std::size_t i) {
    std::memcpy(target.data() + i * source.size(), source.data(), source.size());
  };
  for (auto _ : state) ckpt::detail::parallel_for(2, 2, copy);
  benchmark::DoNotOptimize(target.data());
}

// ---- the demo MLP after 300 Adam steps: its weights and moments, per codec ----

void BM_DemoMlpSave(benchmark::State& state) {
  static const demo::TrainState trained = [] {
    demo::TrainState s;
    demo::initialize(s);
    const demo::Dataset data;
    for (int step = 0; step < 300; ++step) demo::train_step(s, data);
    return s;
  }();
  const std::string& spec = codec_specs[std::size_t(state.range(0))];
  ckpt::SaveOptions options;
  options.codecs = ckpt::CodecPolicy(spec);
  const ckpt::Checkpoint<demo::TrainState> checkpoint(options);
  const std::string path = file_for(state, "mlp");
  ckpt::SaveStats stats;
  for (auto _ : state) stats = checkpoint.save(path, trained);
  demo::TrainState loaded;
  checkpoint.load(path, loaded);
  // The state is tiny, so the header dominates the file: "tensor_ratio" is the codec's ratio on the tensors alone.
  const ckpt::Reader reader(path);
  std::uint64_t stored = 0;
  for (const ckpt::TensorInfo& info : reader.tensors()) stored += info.stored_bytes;
  state.counters["tensor_ratio"] = double(stats.tensor_bytes) / double(stored);
  set_ratio(state, stats.tensor_bytes, stats.file_bytes);
  state.counters["file_bytes"] = double(stats.file_bytes);
  state.SetLabel(spec);
  std::filesystem::remove(path);
}

BENCHMARK_TEMPLATE(BM_Save, float)->Apply(codec_and_size_args)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Save, ckpt::bfloat16)->Apply(codec_and_size_args)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Load, float)->Apply(codec_and_size_args)->UseRealTime();
BENCHMARK_TEMPLATE(BM_Load, ckpt::bfloat16)->Apply(codec_and_size_args)->UseRealTime();
BENCHMARK(BM_SaveTensorCount)->Apply(tensor_count_args);
BENCHMARK(BM_LoadTensorCount)->Apply(tensor_count_args);
BENCHMARK(BM_OpenFirstTensor)->Apply(verify_and_size_args);
// A fixed count: each iteration also waits, untimed, for the durable write.
BENCHMARK(BM_AsyncSaveStall)->Apply(codec_and_size_args)->UseManualTime()->Iterations(10);
BENCHMARK(BM_Memcpy)->ArgName("MiB")->Arg(16)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Checksum)->ArgName("MiB")->Arg(64)->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_Encode, float)->Apply(codec_thread_args);
BENCHMARK_TEMPLATE(BM_Encode, ckpt::bfloat16)->Apply(codec_thread_args);
BENCHMARK_TEMPLATE(BM_Decode, float)->Apply(codec_thread_args);
BENCHMARK_TEMPLATE(BM_Decode, ckpt::bfloat16)->Apply(codec_thread_args);
BENCHMARK(BM_ParallelForDispatch)->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_DemoMlpSave)->ArgName("codec")->DenseRange(0, 2)->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();

// Writes the files python/tests reads, with the C++ library, so that the
// Python package is tested against what ckpt really writes:
//
//   write_fixtures DIR          every dtype with each codec, two manager runs,
//                               the reliability suite's hostile files, and the
//                               library's XXH3 of random bytes
//                               and distributed checkpoint directories, a
//                               DistributedCheckpointManager's run and a
//                               chain of incremental checkpoints
//   write_fixtures --dump FILE|DIR OUT
//                               what the C++ Reader reads from FILE, or what a
//                               single process loads from a distributed
//                               checkpoint DIR, for a bit-for-bit comparison
//                               (OUT.json + OUT.bin)
//
// Every checkpoint written in DIR gets such a dump next to it.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "distributed/thread_communicator.hpp"
#include "reliability/hostile_files.hpp"

namespace {

// splitmix64: any bits, NaN and infinity patterns included, the same everywhere.
std::uint64_t next_random(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::vector<std::byte> random_bytes(std::size_t size, std::uint64_t seed) {
  std::vector<std::byte> bytes(size);
  for (std::byte& byte : bytes) byte = static_cast<std::byte>(next_random(seed) & 0xFF);
  return bytes;
}

void write_json(const std::string& path, const nlohmann::json& value) { std::ofstream(path) << value.dump(1) << "\n"; }

// OUT.bin holds every tensor's bytes as ckpt::Reader returns them, back to
// back in file order; OUT.json names, dtypes, shapes and offsets into it.
void dump_directory(const std::string& path, const std::string& out);

void dump(const std::string& path, const std::string& out) {
  if (std::filesystem::is_directory(path)) return dump_directory(path, out);
  const ckpt::Reader reader(path);
  std::ofstream bin(out + ".bin", std::ios::binary);
  nlohmann::json tensors = nlohmann::json::array();
  std::uint64_t offset = 0;
  for (const ckpt::TensorInfo& info : reader.tensors()) {
    const ckpt::Tensor tensor = reader.tensor(info.name);
    bin.write(reinterpret_cast<const char*>(tensor.data()), static_cast<std::streamsize>(tensor.nbytes()));
    tensors.push_back({{"name", info.name},
                       {"dtype", ckpt::dtype_name(info.dtype)},
                       {"shape", info.shape},
                       {"codec", info.codec},
                       {"offset", offset},
                       {"nbytes", tensor.nbytes()}});
    offset += tensor.nbytes();
  }
  write_json(out + ".json", {{"tensors", tensors}, {"metadata", reader.metadata()}});
}

// The same for a distributed checkpoint directory: every tensor whole, as
// one process loads it (by name), and the metadata the load reads; a
// tensor's codec is its first piece's.
void dump_directory(const std::string& path, const std::string& out) {
  ckpt::SingleProcessCommunicator one_process;
  std::map<std::string, ckpt::Tensor> tensors;
  ckpt::DistributedCheckpoint<std::map<std::string, ckpt::Tensor>>(one_process).load(path, tensors);
  const ckpt::DistributedIndex index = ckpt::read_distributed_index(path);
  std::ofstream bin(out + ".bin", std::ios::binary);
  nlohmann::json entries = nlohmann::json::array();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const ckpt::DistributedTensorInfo& info = index.tensors.at(name);
    bin.write(reinterpret_cast<const char*>(tensor.data()), static_cast<std::streamsize>(tensor.nbytes()));
    entries.push_back({{"name", name},
                       {"dtype", ckpt::dtype_name(tensor.dtype())},
                       {"shape", tensor.shape()},
                       {"codec", info.pieces.empty() ? "raw" : info.pieces.front().codec},
                       {"offset", offset},
                       {"nbytes", tensor.nbytes()}});
    offset += tensor.nbytes();
  }
  write_json(out + ".json", {{"tensors", entries}, {"metadata", index.metadata}});
}

// Every dtype in shapes that make one chunk, several chunks with a short last
// one (chunk_bytes 96 holds 96, 48, 24 or 12 elements), a scalar and an empty tensor.
void write_dtype_files(const std::string& dir) {
  std::vector<std::vector<std::byte>> data;
  std::vector<ckpt::NamedTensor> tensors;
  const std::vector<ckpt::Shape> shapes = {{37}, {3, 5}, {2, 3, 50}, {}, {0, 4}};
  std::uint64_t seed = 1;
  for (ckpt::DType dtype : ckpt::all_dtypes) {
    for (const ckpt::Shape& shape : shapes) {
      data.push_back(random_bytes(ckpt::byte_size(dtype, shape), ++seed));
      // A BOOL byte must be 0 or 1; safetensors readers may refuse others.
      if (dtype == ckpt::DType::BOOL) {
        for (std::byte& byte : data.back()) byte &= std::byte{1};
      }
      tensors.push_back({std::string(ckpt::dtype_name(dtype)) + "/rank" + std::to_string(shape.size()) +
                             (ckpt::element_count(shape) == 0 ? "-empty" : ""),
                         ckpt::TensorView(dtype, shape, data.back().data())});
    }
  }
  for (const char* codec : {"raw", "zstd", "shuffle+zstd"}) {
    ckpt::SaveOptions options;
    options.codecs = codec;
    options.chunk_bytes = 96;
    const std::string path = dir + "/dtypes-" + (codec == std::string("shuffle+zstd") ? "shuffle_zstd" : codec);
    ckpt::write_checkpoint(path + ".safetensors", tensors, {{"codec", codec}, {"nested", {{"a", {1, 2, 3}}}}}, options);
    dump(path + ".safetensors", path);
  }
}

// The state of the manager runs: weights that move at each step, a frozen
// tensor, a BF16 tensor, integers, and a tensor that appears from step 30 on.
struct RunState {
  std::vector<float> weight = std::vector<float>(12);
  std::vector<float> frozen = std::vector<float>(5, 0.25f);
  std::vector<ckpt::bfloat16> half = std::vector<ckpt::bfloat16>(8);
  std::vector<std::int64_t> counts = std::vector<std::int64_t>(3);
  std::optional<std::vector<float>> late;
  std::uint64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model/weight", ckpt::shaped(weight, {4, 3}))("model/frozen", frozen)("model/half", half);
    ar("counts", counts)("late", late)("step", step);
  }

  void advance() {
    ++step;
    // The last row moves every 20 steps only: between checkpoints 10 steps
    // apart, all or three quarters of the weights change.
    for (std::size_t i = 0; i < weight.size(); ++i) {
      if (i < 9 || step % 20 == 0) weight[i] += 0.5f * float(i) - float(step);
    }
    for (std::size_t i = 0; i < half.size(); ++i) half[i].bits = static_cast<std::uint16_t>(0x3F80 + step * 3 + i);
    for (std::size_t i = 0; i < counts.size(); ++i) counts[i] = static_cast<std::int64_t>(step * (i + 1)) - 7;
    if (step >= 30) late = std::vector<float>{float(step), -float(step)};
  }
};

void write_run(const std::string& dir, const std::string& name_template, std::uint64_t steps) {
  ckpt::ManagerOptions options;
  options.name_template = name_template;
  options.save_policy.every_steps = 10;
  options.retention.max_to_keep = 0;
  options.save.codecs = ckpt::CodecPolicy("raw").for_names("model/half", "shuffle+zstd");
  double now = 1.7e9;
  options.clock = [&now] { return now; };
  ckpt::CheckpointManager manager(dir, options);
  RunState state;
  while (state.step < steps) {
    state.advance();
    now += 1;
    const double step = static_cast<double>(state.step);
    const ckpt::StepInfo info{state.step / 20, {{"loss", 1.0 / step}, {"val_loss", 2.0 / step}}};
    manager.maybe_save(state.step, state, info);
  }
  for (const ckpt::CheckpointInfo& checkpoint : manager.list()) {
    dump(checkpoint.path, checkpoint.path.substr(0, checkpoint.path.rfind('.')));
  }
}

// A chain of incremental checkpoints (docs/format.md, section 8) in
// DIR/chain: step-0 full, then steps 1-4 each saved against the one before
// with xor-delta. "frozen" never changes (referenced, at depth 4 still from
// step-0); "weight" (F32) and "half" (BF16) change a little at every step
// (xor-delta over xor-delta); "embedding" is renamed "tok/embedding" at step
// 2, same content (referenced under its old name); "bias" differs at step 2
// only (xor-delta there and at step 3, back to its first value, then
// referenced by step 4: a reference to an xor-delta over an xor-delta over a
// reference).
void write_chain(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::vector<float> frozen(20), weight(512), embedding(96), bias(6, 1.5f);
  std::vector<ckpt::bfloat16> half(40);
  for (std::size_t i = 0; i < frozen.size(); ++i) frozen[i] = 0.125f * float(i) - 1.0f;
  for (std::size_t i = 0; i < weight.size(); ++i) weight[i] = std::sin(float(i)) * 3.0f;
  for (std::size_t i = 0; i < embedding.size(); ++i) embedding[i] = float(i) / 7.0f;
  for (std::size_t i = 0; i < half.size(); ++i) half[i].bits = static_cast<std::uint16_t>(0x3F00 + i * 5);
  std::string parent;
  for (int step = 0; step <= 4; ++step) {
    for (std::size_t i = 0; i < weight.size(); ++i) weight[i] += 1e-4f * float(step) * float(i % 13);
    for (std::size_t i = 0; i < half.size(); i += 3) half[i].bits = static_cast<std::uint16_t>(half[i].bits ^ step);
    std::vector<float> changed_bias(bias);
    if (step == 2) changed_bias[0] = -2.0f;
    const std::vector<ckpt::NamedTensor> tensors = {
        {"bias", ckpt::TensorView(changed_bias.data(), {changed_bias.size()})},
        {step < 2 ? "embedding" : "tok/embedding", ckpt::TensorView(embedding.data(), {12, 8})},
        {"frozen", ckpt::TensorView(frozen.data(), {4, 5})},
        {"half", ckpt::TensorView(ckpt::DType::BF16, {half.size()}, half.data())},
        {"weight", ckpt::TensorView(weight.data(), {32, 16})}};
    ckpt::SaveOptions options;
    options.incremental.parent = parent;
    options.incremental.content_hashes = true;
    options.incremental.xor_delta = true;
    options.incremental.max_chain_fraction = 1e9;  // only full_every decides: never here
    const std::string path = dir + "/step-" + std::to_string(step);
    ckpt::write_checkpoint(path + ".safetensors", tensors, {{"step", step}}, options);
    dump(path + ".safetensors", path);
    parent = path + ".safetensors";
  }
}

// Distributed checkpoint directories of the distributed tests' sample state
// (rows, columns, 2-D blocks, uneven and reversed splits, flat ZeRO ranges,
// replicated tensors and replicated row groups, BOOL, a scalar, an empty
// tensor), saved by `world` ranks on threads, each with its dump; and a run
// of them, one directory per step as examples/train_mlp_mpi writes.
void write_distributed(const std::string& dir, const std::string& name, int world, std::uint64_t step,
                       const char* codec = "raw") {
  ckpt::DistributedOptions options;
  options.save.codecs = ckpt::CodecPolicy(codec);
  options.save.chunk_bytes = 64;  // several chunks a piece, a short last one
  const std::string path = dir + "/" + name;
  const auto failures = ckpt::test::run_ranks(world, [&](ckpt::Communicator& communicator) {
    ckpt::DistributedCheckpoint<ckpt::test::SampleState> checkpoint(communicator, options);
    checkpoint.save(path, step, ckpt::test::sample_for_saving(communicator.rank(), world, step));
  });
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
  dump(path, path);
}

void write_distributed_checkpoints(const std::string& dir) {
  std::filesystem::create_directories(dir + "/distributed");
  write_distributed(dir + "/distributed", "world-1", 1, 11);
  write_distributed(dir + "/distributed", "world-3", 3, 12);
  write_distributed(dir + "/distributed", "world-4", 4, 13);
  write_distributed(dir + "/distributed", "world-6", 6, 14);
  write_distributed(dir + "/distributed", "world-3-zstd", 3, 15, "zstd");
  write_distributed(dir + "/distributed", "world-4-shuffle_zstd", 4, 16, "shuffle+zstd");
  // The run: the world size changes between steps, as a resumed job's may.
  std::filesystem::create_directories(dir + "/distributed-run");
  write_distributed(dir + "/distributed-run", "step-00000010", 2, 10);
  write_distributed(dir + "/distributed-run", "step-00000020", 3, 20);
  write_distributed(dir + "/distributed-run", "step-00000030", 2, 30, "shuffle+zstd");
}

// An incremental chain of distributed checkpoints (docs/distributed.md,
// "Incremental checkpoints"), each with its dump: step-1 saved full by 3
// ranks, step-2 by 3 ranks against it with one box of layers/0/rows
// changed, step-3 by 3 ranks against step-2 with nothing changed (its boxes
// read from step-1's and step-2's files).
void write_distributed_chain(const std::string& dir) {
  std::filesystem::create_directories(dir);
  std::string parent;
  for (std::uint64_t step = 1; step <= 3; ++step) {
    ckpt::DistributedOptions options;
    options.save.incremental.content_hashes = true;
    options.save.incremental.parent = parent;
    const std::string path = dir + "/step-" + std::to_string(step);
    const auto failures = ckpt::test::run_ranks(3, [&](ckpt::Communicator& communicator) {
      ckpt::test::SampleState state = ckpt::test::sample_for_saving(communicator.rank(), 3, 1);
      state.step = step;
      if (step >= 2 && communicator.rank() == 0) {
        std::byte* rows = state.locals.at("layers/0/rows").mutable_data();
        rows[0] = ~rows[0];
      }
      ckpt::DistributedCheckpoint<ckpt::test::SampleState>(communicator, options).save(path, step, state);
    });
    for (const std::exception_ptr& failure : failures) {
      if (failure) std::rethrow_exception(failure);
    }
    dump(path, path);
    parent = path;
  }
}

// A DistributedCheckpointManager's run of the sample state, 2 ranks on
// threads: steps 10 to 40 with epoch and metrics, step 10 pinned, step 20
// deleted by retention; then what a killed job leaves: step 20's directory
// renamed for deletion with its index still in it, and a step directory whose
// save never committed. run.json is the listing the C++ manager makes.
void write_distributed_manager_run(const std::string& dir) {
  ckpt::ManagerOptions options;
  options.name_template = "step-{step:08}";
  options.save_policy.every_steps = 10;
  options.retention.max_to_keep = 2;
  constexpr int world = 2;
  const auto failures = ckpt::test::run_ranks(world, [&](ckpt::Communicator& communicator) {
    double now = 1.7e9;
    ckpt::ManagerOptions mine = options;
    mine.clock = [&now] { return now; };
    ckpt::DistributedCheckpointManager manager(communicator, dir, mine);
    for (std::uint64_t step = 1; step <= 40; ++step) {
      now += 1;
      const ckpt::StepInfo info{step / 20, {{"loss", 1.0 / static_cast<double>(step)}}};
      manager.maybe_save(step, ckpt::test::sample_for_saving(communicator.rank(), world, step), info);
      if (step == 10) manager.pin(10);
    }
  });
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
  std::filesystem::copy(dir + "/step-00000030", dir + "/.step-00000020.removing");
  std::filesystem::create_directories(dir + "/step-00000050");
  std::ofstream(dir + "/step-00000050/model-00001-of-00002.safetensors") << "partial";
  options.read_only = true;
  ckpt::SingleProcessCommunicator one;
  nlohmann::json listing = nlohmann::json::array();
  for (const ckpt::CheckpointInfo& info : ckpt::DistributedCheckpointManager(one, dir, options).list()) {
    listing.push_back({{"step", info.step},
                       {"path", info.path},
                       {"bytes", info.bytes},
                       {"time", info.time},
                       {"epoch", info.epoch ? nlohmann::json(*info.epoch) : nlohmann::json()},
                       {"metrics", info.metrics},
                       {"pinned", info.pinned}});
  }
  write_json(dir + ".json", listing);
}

// Each hostile file of the reliability suite, with the ids the C++ reader
// may refuse it with.
void write_hostile_files(const std::string& dir) {
  std::filesystem::create_directories(dir + "/hostile");
  std::vector<ckpt::test::HostileFile> files = ckpt::test::hostile_safetensors_files();
  for (ckpt::test::HostileFile& file : ckpt::test::hostile_ckpt_files(dir + "/hostile/scratch.ckpt")) {
    files.push_back(std::move(file));
  }
  std::filesystem::remove(dir + "/hostile/scratch.ckpt");
  nlohmann::json manifest = nlohmann::json::array();
  for (std::size_t i = 0; i < files.size(); ++i) {
    const std::string name = "hostile/" + std::to_string(i) + ".safetensors";
    ckpt::test::write_file_bytes(dir + "/" + name, files[i].bytes);
    nlohmann::json ids = nlohmann::json::array();
    for (ckpt::ErrorId id : files[i].expected) ids.push_back(static_cast<int>(id));
    manifest.push_back({{"file", name}, {"what", files[i].what}, {"expected", ids}});
  }
  write_json(dir + "/hostile.json", manifest);
}

// The library's checksum of prefixes of xxh3.bin (random bytes), at every
// length class XXH3 treats differently (0, 1-3, 4-8, 9-16, 17-128, 129-240,
// longer, several stripes and blocks).
void write_checksums(const std::string& dir) {
  const std::vector<std::byte> bytes = random_bytes((1 << 20) + 3, 4242);
  ckpt::test::write_file_bytes(dir + "/xxh3.bin", bytes);
  nlohmann::json values = nlohmann::json::object();
  for (std::size_t size : {0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1024, 1025, 65536 + 7, (1 << 20) + 3}) {
    values[std::to_string(size)] = ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(bytes.data(), size));
  }
  write_json(dir + "/xxh3.json", values);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::string(argv[1]) == "--dump") {
      dump(argv[2], argv[3]);
      return 0;
    }
    if (argc != 2) {
      std::fprintf(stderr, "usage: write_fixtures DIR | write_fixtures --dump FILE|DIR OUT\n");
      return 2;
    }
    const std::string dir = argv[1];
    std::filesystem::create_directories(dir);
    write_dtype_files(dir);
    write_run(dir + "/run", "ckpt-{step:08}.safetensors", 60);
    write_run(dir + "/run-template", "run-e{epoch:03}-{step:08}-{val_loss:.4f}.safetensors", 30);
    write_hostile_files(dir);
    write_distributed_checkpoints(dir);
    write_distributed_manager_run(dir + "/distributed-manager-run");
    write_checksums(dir);
    write_chain(dir + "/chain");
    write_distributed_chain(dir + "/distributed-chain");
  } catch (const std::exception& error) {
    std::fprintf(stderr, "write_fixtures: %s\n", error.what());
    return 1;
  }
  return 0;
}

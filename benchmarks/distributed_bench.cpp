// Distributed checkpoints against the disk, measured in one run under mpirun
// (see BENCHMARKS.md, "Distributed"):
//
//   mpirun -np N distributed_bench save DIR [MIB] [REPS]   N ranks save a sharded state; the same N
//                                                          processes write the same bytes raw with
//                                                          fsync at the same time, alternating
//   mpirun -np M distributed_bench load DIR [REPS]         M ranks load (another split) what `save`
//                                                          left in DIR/last; the same M processes
//                                                          read the spans of the files that hold the
//                                                          bytes each needs
//   mpirun -np N distributed_bench xor DIR [MIB] [SAVES]   N ranks save a training state SAVES times,
//                                                          10 Adam steps apart, each save whole with
//                                                          shuffle+zstd and with xor-delta against
//                                                          the previous one; prints the ratio of
//                                                          their stored bytes (saves 2 to SAVES)
//
// The state: 12 tensors of [rows, 1024] float32 (MIB in all): 8 split by
// rows across the ranks (tensor parallel), 4 replicated on every rank (data
// parallel), which the save writes once, balanced across ranks. The raw
// writer of each rank writes as many bytes as that rank's checkpoint file
// holds, from the same memory. Times are between barriers: the slowest
// rank's. Loads start cold (every file's pages dropped with
// posix_fadvise(DONTNEED); on a virtual machine the host may still cache).

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "bench_state.hpp"
#include "ckpt/adapters/mpi.hpp"
#include "ckpt/distributed.hpp"

namespace {

constexpr std::uint64_t columns = 1024;
constexpr int sharded_tensors = 8, replicated_tensors = 4;

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// Runs `work` on every rank between barriers; returns the slowest rank's seconds.
template <class Work>
double timed(Work&& work) {
  MPI_Barrier(MPI_COMM_WORLD);
  const double start = now();
  work();
  MPI_Barrier(MPI_COMM_WORLD);
  return now() - start;
}

struct BenchState {
  int rank = 0, world = 1;
  bool loading = false;  // loads split the sharded tensors by columns
  std::uint64_t rows = 0;
  std::vector<std::vector<float>> sharded, replicated;

  ckpt::Split row_split() const { return ckpt::even_split(rows, world, rank); }
  ckpt::Split column_split() const { return ckpt::even_split(columns, world, rank); }

  template <class Archive>
  void describe(Archive& ar) {
    for (int i = 0; i < sharded_tensors; ++i) {
      const std::string name = "tp/" + std::to_string(i);
      if (loading) {
        const ckpt::Split part = column_split();
        ar(name, ckpt::box_shard(sharded[i], {rows, columns}, {0, part.begin}, {rows, part.count}));
      } else {
        const ckpt::Split part = row_split();
        ar(name, ckpt::box_shard(sharded[i], {rows, columns}, {part.begin, 0}, {part.count, columns}));
      }
    }
    for (int i = 0; i < replicated_tensors; ++i) {
      ar("dp/" + std::to_string(i), ckpt::shaped(replicated[i], {rows, columns}));
    }
  }
};

BenchState make_state(int rank, int world, std::uint64_t mib) {
  BenchState state;
  state.rank = rank;
  state.world = world;
  state.rows = mib * (1 << 20) / sizeof(float) / columns / (sharded_tensors + replicated_tensors);
  const ckpt::Split rows = state.row_split();
  for (int i = 0; i < sharded_tensors; ++i) {
    state.sharded.emplace_back(rows.count * columns);
    for (std::size_t j = 0; j < state.sharded.back().size(); ++j)
      state.sharded.back()[j] = float((j * 31 + i) % 1000) * 0.001f;
  }
  for (int i = 0; i < replicated_tensors; ++i) state.replicated.emplace_back(state.rows * columns, float(i) + 0.5f);
  return state;
}

// Writes `bytes` bytes from `state`'s memory to `path` with write() and fsync;
// with `write_back`, each 8 MiB is sent to disk as soon as it is written
// (sync_file_range), as ckpt's durable saves do.
void write_raw(const std::string& path, const BenchState& state, std::uint64_t bytes, bool write_back) {
  constexpr std::uint64_t write_back_step = std::uint64_t(8) << 20;
  std::uint64_t offset = 0;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<const std::vector<float>*> sources;
  for (const auto& tensor : state.sharded) sources.push_back(&tensor);
  for (const auto& tensor : state.replicated) sources.push_back(&tensor);
  for (const std::vector<float>* source : sources) {
    const auto* data = reinterpret_cast<const char*>(source->data());
    std::uint64_t size = std::min<std::uint64_t>(bytes, source->size() * sizeof(float));
    bytes -= size;
    while (size > 0) {
      const ssize_t written = ::write(fd, data, std::min<std::uint64_t>(size, write_back ? write_back_step : 1 << 30));
      if (written <= 0) std::abort();
      if (write_back) ::sync_file_range(fd, static_cast<off_t>(offset), written, SYNC_FILE_RANGE_WRITE);
      offset += static_cast<std::uint64_t>(written);
      data += written;
      size -= static_cast<std::uint64_t>(written);
    }
  }
  ::fsync(fd);
  ::close(fd);
}

void drop_cache(const std::string& directory) {
  for (const auto& item : std::filesystem::directory_iterator(directory)) {
    const int fd = ::open(item.path().c_str(), O_RDONLY);
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

int run_save(const std::string& directory, std::uint64_t mib, int reps) {
  ckpt::MpiCommunicator world;
  const BenchState state = make_state(world.rank(), world.size(), mib);
  ckpt::DistributedCheckpoint<BenchState> checkpoint(world);
  std::vector<double> ckpt_times, raw_times, write_back_times, commit_shares, plan_times, write_times, commit_times;
  std::uint64_t rank_bytes = 0, checkpoint_bytes = 0, most_bytes = 0;
  for (int rep = 0; rep <= reps; ++rep) {  // rep 0 warms up (and plans) without being counted
    const std::string path = directory + "/rep-" + std::to_string(rep);
    ckpt::DistributedSaveStats stats;
    const double ckpt_time = timed([&] { stats = checkpoint.save(path, rep, state); });
    rank_bytes = stats.rank_bytes;
    checkpoint_bytes = stats.checkpoint_bytes;
    // A new file each time, as the checkpoint's are.
    const std::string raw_path = directory + "/raw-" + std::to_string(world.rank());
    std::filesystem::remove(raw_path);
    const double raw_time = timed([&] { write_raw(raw_path, state, rank_bytes, false); });
    std::filesystem::remove(raw_path);
    const double write_back_time = timed([&] { write_raw(raw_path, state, rank_bytes, true); });
    // The commit's own time: from the last rank's file written to the end
    // (a rank's commit step also waits for slower ranks' writes).
    double written = stats.plan_seconds + stats.write_seconds;
    MPI_Allreduce(MPI_IN_PLACE, &written, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const double commit_share = (ckpt_time - written) / ckpt_time;
    MPI_Allreduce(&rank_bytes, &most_bytes, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    double phases[3] = {stats.plan_seconds, stats.write_seconds, stats.commit_seconds};
    MPI_Allreduce(MPI_IN_PLACE, phases, 3, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    if (rep > 0) {
      plan_times.push_back(phases[0]);
      write_times.push_back(phases[1]);
      commit_times.push_back(phases[2]);
      ckpt_times.push_back(ckpt_time);
      raw_times.push_back(raw_time);
      write_back_times.push_back(write_back_time);
      commit_shares.push_back(commit_share);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world.rank() == 0 && rep < reps) ckpt::remove_distributed_checkpoint(path);
    if (world.rank() == 0 && rep == reps) {
      std::filesystem::remove_all(directory + "/last");
      std::filesystem::rename(path, directory + "/last");
    }
  }
  if (world.rank() == 0) {
    const double mean_bytes = double(checkpoint_bytes) / world.size();
    const double ckpt_time = median(ckpt_times), raw_time = median(raw_times);
    std::printf("save: %d ranks, %.1f MiB checkpoint (replicas once), %.1f MiB on the busiest rank (%.2fx the mean)\n",
                world.size(), checkpoint_bytes / 1048576.0, most_bytes / 1048576.0, most_bytes / mean_bytes);
    std::printf("  ckpt save            %8.1f ms  %6.2f GB/s\n", ckpt_time * 1e3, checkpoint_bytes / ckpt_time / 1e9);
    std::printf("  raw write+fsync      %8.1f ms  %6.2f GB/s\n", raw_time * 1e3, checkpoint_bytes / raw_time / 1e9);
    const double write_back_time = median(write_back_times);
    std::printf("  raw, write-back      %8.1f ms  %6.2f GB/s  (each 8 MiB sent to disk as written)\n",
                write_back_time * 1e3, checkpoint_bytes / write_back_time / 1e9);
    std::printf("  speed vs raw         %8.2f\n", raw_time / ckpt_time);
    std::printf("  speed vs raw, w-b    %8.2f\n", write_back_time / ckpt_time);
    std::printf("  commit share         %8.3f  (after the last file: gather, index, broadcast)\n",
                median(commit_shares));
    std::printf("  slowest rank: plan %.1f ms, write %.1f ms\n", median(plan_times) * 1e3, median(write_times) * 1e3);
  }
  return 0;
}

int run_load(const std::string& directory, int reps) {
  ckpt::MpiCommunicator world;
  const std::string path = directory + "/last";
  const ckpt::DistributedIndex index = ckpt::read_distributed_index(path);
  BenchState state;
  state.rank = world.rank();
  state.world = world.size();
  state.loading = true;
  state.rows = index.tensors.at("tp/0").shape[0];
  state.sharded.resize(sharded_tensors);
  state.replicated.resize(replicated_tensors);
  // The byte ranges this rank needs, in the files, for the raw reader.
  struct Range {
    std::string file;
    std::uint64_t offset, bytes;
  };
  std::vector<Range> ranges;
  std::uint64_t needed = 0;
  for (const auto& [name, tensor] : index.tensors) {
    const ckpt::detail::PieceGeometry wanted =
        name.rfind("tp/", 0) == 0 ? ckpt::detail::PieceGeometry::box({0, state.column_split().begin},
                                                                     {state.rows, state.column_split().count})
                                  : ckpt::detail::PieceGeometry::whole(tensor.shape);
    for (const ckpt::DistributedPieceInfo& piece : tensor.pieces) {
      const ckpt::Reader reader(path + "/" + piece.file);
      const std::uint64_t start = reader.find(piece.stored_name)->file_offset;
      ckpt::detail::for_each_overlap(piece.geometry, wanted, tensor.shape, [&](const ckpt::detail::ElementCopy& copy) {
        ranges.push_back({path + "/" + piece.file, start + copy.source * 4, copy.count * 4});
        needed += copy.count * 4;
      });
    }
  }
  // The raw reader reads, in 1 MiB preads, the spans of each file that hold
  // the needed ranges (a column of a row-split tensor touches every page of
  // its rows, so the pages, not the bytes, are what the disk must deliver).
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.file != b.file ? a.file < b.file : a.offset < b.offset; });
  std::vector<Range> spans;
  std::uint64_t span_bytes = 0;
  for (const Range& range : ranges) {
    if (!spans.empty() && spans.back().file == range.file &&
        range.offset <= spans.back().offset + spans.back().bytes + (64 << 10)) {
      spans.back().bytes = std::max(spans.back().bytes, range.offset + range.bytes - spans.back().offset);
    } else {
      spans.push_back(range);
    }
  }
  for (const Range& span : spans) span_bytes += span.bytes;
  std::vector<char> buffer(1 << 20);
  std::vector<double> verified, unverified, raw;
  for (int rep = 0; rep < reps; ++rep) {
    for (bool verify : {true, false}) {
      if (world.rank() == 0) drop_cache(path);
      ckpt::DistributedOptions options;
      options.load.verify_checksums = verify;
      ckpt::DistributedCheckpoint<BenchState> checkpoint(world, options);
      (verify ? verified : unverified).push_back(timed([&] { checkpoint.load(path, state); }));
    }
    if (world.rank() == 0) drop_cache(path);
    raw.push_back(timed([&] {
      for (const Range& span : spans) {
        const int fd = ::open(span.file.c_str(), O_RDONLY);
        for (std::uint64_t done = 0; done < span.bytes;) {
          const std::uint64_t piece = std::min<std::uint64_t>(span.bytes - done, 1 << 20);
          const ssize_t got = ::pread(fd, buffer.data(), piece, span.offset + done);
          if (got <= 0) std::abort();
          done += static_cast<std::uint64_t>(got);
        }
        ::close(fd);
      }
    }));
  }
  std::uint64_t all_needed = 0, all_spans = 0;
  MPI_Allreduce(&needed, &all_needed, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  MPI_Allreduce(&span_bytes, &all_spans, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (world.rank() == 0) {
    std::printf("load: %llu ranks saved, %d ranks load by columns what was saved by rows; %.1f MiB needed in all\n",
                static_cast<unsigned long long>(index.world_size), world.size(), all_needed / 1048576.0);
    std::printf("  raw read of the spans holding them (%.1f MiB)  %8.1f ms\n", all_spans / 1048576.0,
                median(raw) * 1e3);
    std::printf("  ckpt load, checksums verified   %8.1f ms  speed vs raw %.2f\n", median(verified) * 1e3,
                median(raw) / median(verified));
    std::printf("  ckpt load, unverified           %8.1f ms  speed vs raw %.2f\n", median(unverified) * 1e3,
                median(raw) / median(unverified));
  }
  return 0;
}

// The synthetic Adam state of the single-file xor-delta figure
// (incremental.cpp), each layer's weight and moments split by rows across
// the ranks, but the last layer, which every rank holds whole.
struct AdamShards {
  int rank = 0, world = 1;
  std::uint64_t rows = 0;                   // of every layer
  std::vector<bench::Layer<float>> layers;  // this rank's rows of each

  bool replicated(std::size_t layer) const { return layer + 1 == layers.size(); }

  template <class Archive>
  void describe(Archive& ar) {
    const ckpt::Split part = ckpt::even_split(rows, world, rank);
    for (std::size_t i = 0; i < layers.size(); ++i) {
      bench::Layer<float>& layer = layers[i];
      const std::pair<const char*, std::vector<float>*> tensors[] = {
          {"weight", &layer.weight}, {"exp_avg", &layer.exp_avg}, {"exp_avg_sq", &layer.exp_avg_sq}};
      for (const auto& [name, values] : tensors) {
        const std::string full_name = "layer" + std::to_string(i) + "/" + name;
        if (replicated(i)) {
          ar(full_name, ckpt::shaped(*values, {rows, columns}));  // replicated
        } else {
          ar(full_name, ckpt::box_shard(*values, {rows, columns}, {part.begin, 0}, {part.count, columns}));
        }
      }
    }
  }
};

AdamShards make_adam_shards(int rank, int world, std::uint64_t mib) {
  constexpr std::size_t layer_count = 4;
  AdamShards state;
  state.rank = rank;
  state.world = world;
  const bench::ModelState<float> whole = bench::make_state<float>(mib << 20, layer_count, 7);
  state.rows = whole.layers[0].rows;
  const ckpt::Split part = ckpt::even_split(state.rows, world, rank);
  state.layers = whole.layers;
  for (std::size_t i = 0; i + 1 < layer_count; ++i) {  // the last stays whole
    bench::Layer<float>& layer = state.layers[i];
    for (std::vector<float>* values : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
      *values = std::vector<float>(values->begin() + static_cast<std::ptrdiff_t>(part.begin * columns),
                                   values->begin() + static_cast<std::ptrdiff_t>((part.begin + part.count) * columns));
    }
  }
  return state;
}

int run_xor(const std::string& directory, std::uint64_t mib, int saves) {
  ckpt::MpiCommunicator world;
  AdamShards state = make_adam_shards(world.rank(), world.size(), mib);
  ckpt::DistributedOptions whole;
  whole.save.codecs = "shuffle+zstd";
  whole.save.incremental.content_hashes = true;
  ckpt::DistributedOptions delta = whole;
  delta.save.incremental.xor_delta = true;
  delta.save.incremental.full_every = std::size_t(saves) + 1;
  delta.save.incremental.max_chain_fraction = 1e9;
  std::uint64_t whole_bytes = 0, delta_bytes = 0, seed = 1000;  // stored bytes, saves 2 to the last
  std::string parent;
  for (int save = 0; save < saves; ++save) {
    const std::string whole_path = directory + "/whole-" + std::to_string(save);
    const std::string delta_path = directory + "/delta-" + std::to_string(save);
    ckpt::DistributedCheckpoint<AdamShards>(world, whole).save(whole_path, save, state);
    delta.save.incremental.parent = parent;
    ckpt::DistributedCheckpoint<AdamShards>(world, save == 0 ? whole : delta).save(delta_path, save, state);
    if (save > 0) {
      whole_bytes += ckpt::read_distributed_index(whole_path).total_size;
      delta_bytes += ckpt::read_distributed_index(delta_path).total_size;
    }
    AdamShards restored = state;
    for (bench::Layer<float>& layer : restored.layers) std::fill(layer.weight.begin(), layer.weight.end(), 0.0f);
    ckpt::DistributedCheckpoint<AdamShards>(world).load(delta_path, restored);  // checksums verified
    for (std::size_t i = 0; i < state.layers.size(); ++i) {
      if (restored.layers[i].weight != state.layers[i].weight) {
        std::fprintf(stderr, "distributed_bench: %s did not restore\n", delta_path.c_str());
        return 1;
      }
    }
    parent = delta_path;
    for (bench::Layer<float>& layer : state.layers) bench::adam_steps(layer, 10, seed);
  }
  MPI_Barrier(MPI_COMM_WORLD);  // every rank's last load is done
  if (world.rank() == 0) {
    for (int save = 0; save < saves; ++save) {
      std::filesystem::remove_all(directory + "/whole-" + std::to_string(save));
      std::filesystem::remove_all(directory + "/delta-" + std::to_string(save));
    }
    std::printf("%d ranks, Adam %llu MiB, %d saves 10 steps apart: xor-delta %llu B, shuffle+zstd %llu B: ratio %.3f\n",
                world.size(), static_cast<unsigned long long>(mib), saves, static_cast<unsigned long long>(delta_bytes),
                static_cast<unsigned long long>(whole_bytes), double(delta_bytes) / double(whole_bytes));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ckpt::MpiSession mpi(argc, argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: distributed_bench save DIR [MIB] [REPS] | load DIR [REPS] | xor DIR [MIB] [SAVES]\n");
    return 2;
  }
  const std::string mode = argv[1], directory = argv[2];
  try {
    if (mode == "save") {
      return run_save(directory, argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 256,
                      argc > 4 ? std::atoi(argv[4]) : 5);
    }
    if (mode == "load") return run_load(directory, argc > 3 ? std::atoi(argv[3]) : 5);
    if (mode == "xor") {
      return run_xor(directory, argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 64, argc > 4 ? std::atoi(argv[4]) : 5);
    }
  } catch (const ckpt::Error& error) {
    std::fprintf(stderr, "distributed_bench: %s\n", error.what());
    return 1;
  }
  std::fprintf(stderr, "distributed_bench: unknown mode %s\n", mode.c_str());
  return 2;
}

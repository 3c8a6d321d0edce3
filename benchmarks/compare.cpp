// The C++ half of benchmarks/compare.sh: generates the state (float32 weights
// and Adam moments, plus a bfloat16 copy for compression ratios), measures the
// limits (raw write+fsync, raw read, memcpy), ckpt itself and, when built with
// libtorch, torch::save. Every figure is the median of --reps runs and is
// printed as one JSON object per line on stdout. Each save's peak extra memory
// is measured once more, in a child process (peak_memory.hpp). The raw ckpt
// file it leaves in --dir is what the Python peers read, so every peer saves
// the same bytes.
//
//   ckpt_compare --dir DIR [--size-mib 256] [--reps 3]

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_state.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "peak_memory.hpp"

#ifdef CKPT_BENCH_WITH_TORCH
#include <torch/serialize.h>
#include <torch/torch.h>
#endif

namespace {

using State = bench::ModelState<float>;

struct Options {
  std::string dir;
  std::uint64_t size_mib = 256;
  int reps = 3;
};

struct Measurement {
  std::string name;
  std::string kind;   // save, load, open, stall, codec
  std::string cache;  // for loads: "warm" (page cache) or "cold" (evicted first)
  std::string dtype = "float32";
  std::uint64_t bytes = 0;             // logical state bytes
  std::uint64_t file_bytes = 0;        // bytes on disk, 0 when none
  std::int64_t peak_extra_bytes = -1;  // of a save, measured in a child process; -1 when not measured
};

std::uint64_t state_mib = 0;  // the --size-mib of this run, in every line

void emit(const Measurement& m, double seconds) {
  nlohmann::json line = {
      {"name", m.name},   {"kind", m.kind},     {"cache", m.cache},           {"dtype", m.dtype},
      {"bytes", m.bytes}, {"seconds", seconds}, {"file_bytes", m.file_bytes}, {"state_mib", state_mib}};
  if (m.peak_extra_bytes >= 0) line["peak_extra_bytes"] = m.peak_extra_bytes;
  std::cout << line.dump() << std::endl;
  std::fprintf(stderr, "  %-40s %10.4f s\n", (m.name + (m.cache.empty() ? "" : " (" + m.cache + ")")).c_str(), seconds);
}

// Median of `reps` timed runs of `body`; `prepare` runs untimed before each.
double median_seconds(int reps, const std::function<void()>& prepare, const std::function<void()>& body) {
  std::vector<double> times;
  for (int rep = 0; rep < reps; ++rep) {
    prepare();
    const auto start = bench::Clock::now();
    body();
    times.push_back(bench::seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void fail(const std::string& message) {
  std::fprintf(stderr, "ckpt_compare: %s\n", message.c_str());
  std::exit(1);
}

// Drops the file's pages from the page cache, so the next read comes from the disk.
void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) fail("cannot open " + path);
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

void write_all(int fd, const void* data, std::size_t size) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t written = ::write(fd, bytes, size);
    if (written <= 0) fail("write failed");
    bytes += written;
    size -= static_cast<std::size_t>(written);
  }
}

// In 1 MiB pieces: on the machine of BENCHMARKS.md one 256 MiB read() ran at a
// quarter of the speed of 1 MiB reads (the speed `dd bs=1M` gets).
void read_all(int fd, void* data, std::size_t size) {
  constexpr std::size_t piece = std::size_t(1) << 20;
  char* bytes = static_cast<char*>(data);
  while (size > 0) {
    const ssize_t got = ::read(fd, bytes, size < piece ? size : piece);
    if (got <= 0) fail("read failed");
    bytes += got;
    size -= static_cast<std::size_t>(got);
  }
}

std::uint64_t file_size(const std::string& path) { return std::filesystem::file_size(path); }

void remove_if_present(const std::string& path) { std::filesystem::remove(path); }

// The limits: the same bytes written with one write() per tensor and an
// fsync, read back with read() into memory allocated beforehand, and copied
// with memcpy into a buffer touched beforehand.
void measure_limits(const Options& options, const State& state) {
  const std::string path = options.dir + "/limit.bin";
  const auto buffers = state.buffers();
  const std::uint64_t bytes = state.tensor_bytes();
  const double write_s = median_seconds(
      options.reps, [&] { remove_if_present(path); },
      [&] {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0) fail("cannot create " + path);
        for (const auto& [data, size] : buffers) write_all(fd, data, size);
        if (::fsync(fd) != 0) fail("fsync failed");
        ::close(fd);
      });
  emit({"raw write+fsync", "save", "", "float32", bytes, bytes}, write_s);

  std::vector<char> target(bytes, 1);
  for (const char* cache : {"warm", "cold"}) {
    const bool cold = std::string(cache) == "cold";
    const double read_s = median_seconds(
        options.reps,
        [&] {
          if (cold) evict(path);
        },
        [&] {
          const int fd = ::open(path.c_str(), O_RDONLY);
          if (fd < 0) fail("cannot open " + path);
          read_all(fd, target.data(), target.size());
          ::close(fd);
        });
    emit({"raw read", "load", cache, "float32", bytes, bytes}, read_s);
  }
  remove_if_present(path);

  const double copy_s = median_seconds(
      options.reps, [] {},
      [&] {
        std::size_t offset = 0;
        for (const auto& [data, size] : buffers) {
          std::memcpy(target.data() + offset, data, size);
          offset += size;
        }
      });
  emit({"memcpy of the state", "stall", "", "float32", bytes, 0}, copy_s);
}

const std::vector<std::string> codecs = {"raw", "zstd", "shuffle+zstd"};

std::string ckpt_file(const Options& options, const std::string& codec, const std::string& dtype) {
  std::string name = codec;
  std::replace(name.begin(), name.end(), '+', '_');
  return options.dir + "/state-" + dtype + "-" + name + ".safetensors";
}

template <class T>
void measure_ckpt_save(const Options& options, const bench::ModelState<T>& state, const std::string& dtype) {
  for (const std::string& codec : codecs) {
    const std::string path = ckpt_file(options, codec, dtype);
    ckpt::SaveOptions save;
    save.codecs = ckpt::CodecPolicy(codec);
    const ckpt::Checkpoint<bench::ModelState<T>> checkpoint(save);
    const double seconds = median_seconds(
        options.reps, [&] { remove_if_present(path); }, [&] { checkpoint.save(path, state); });
    remove_if_present(path);
    const auto peak =
        static_cast<std::int64_t>(bench::peak_extra_bytes_in_child([&] { checkpoint.save(path, state); }));
    emit({"ckpt save " + codec, "save", "", dtype, state.tensor_bytes(), file_size(path), peak}, seconds);
  }
}

// The codec alone on the whole state in memory, on both cores: the speed a
// compressing save needs to keep up with the disk.
template <class T>
void measure_encode(const Options& options, const bench::ModelState<T>& state, const std::string& dtype) {
  const auto codec = ckpt::CodecRegistry::instance().make("shuffle+zstd");
  std::uint64_t stored = 0;
  const double seconds = median_seconds(
      options.reps, [&] { stored = 0; },
      [&] {
        for (const auto& layer : state.layers) {
          for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
            stored += ckpt::detail::encode_chunked(*codec, reinterpret_cast<const std::byte*>(tensor->data()),
                                                   tensor->size() * sizeof(T), sizeof(T), std::size_t(4) << 20, 2)
                          .bytes.size();
          }
        }
      });
  emit({"shuffle+zstd encode, 2 threads", "codec", "", dtype, state.tensor_bytes(), stored}, seconds);
}

void measure_async(const Options& options, const State& state) {
  for (const std::string& codec : codecs) {
    const std::string directory = options.dir + "/async-" + std::to_string(&codec - codecs.data());
    std::filesystem::remove_all(directory);
    ckpt::ManagerOptions manager_options;
    manager_options.async = true;
    manager_options.retention.max_to_keep = 1;
    manager_options.save.codecs = ckpt::CodecPolicy(codec);
    std::vector<double> stalls, totals;
    std::uint64_t file_bytes = 0;
    {
      ckpt::CheckpointManager manager(directory, manager_options);
      // The first save allocates the staging buffer that later saves reuse; it is not counted.
      for (int step = 0; step <= options.reps; ++step) {
        const auto start = bench::Clock::now();
        manager.save(static_cast<std::uint64_t>(step), state);
        const double stall = bench::seconds_since(start);
        manager.wait();
        if (step == 0) continue;
        stalls.push_back(stall);
        totals.push_back(bench::seconds_since(start));
      }
      file_bytes = manager.latest()->bytes;
    }
    std::filesystem::remove_all(directory);
    // A first save with its staging buffer: the memory an async save holds.
    const auto peak = static_cast<std::int64_t>(bench::peak_extra_bytes_in_child([&] {
      ckpt::CheckpointManager manager(directory, manager_options);
      manager.save(0, state);
      manager.wait();
    }));
    std::filesystem::remove_all(directory);
    for (auto* times : {&stalls, &totals}) std::sort(times->begin(), times->end());
    const std::uint64_t bytes = state.tensor_bytes();
    emit({"ckpt async " + codec + " stall", "stall", "", "float32", bytes, file_bytes}, stalls[stalls.size() / 2]);
    emit({"ckpt async " + codec + " total", "save", "", "float32", bytes, file_bytes, peak}, totals[totals.size() / 2]);
  }
}

void measure_ckpt_load(const Options& options, const State& state) {
  State target = state;  // loads overwrite a state of the right shapes, like a resume
  for (const std::string& codec : codecs) {
    const std::string path = ckpt_file(options, codec, "float32");
    const ckpt::Checkpoint<State> checkpoint;
    for (const char* cache : {"warm", "cold"}) {
      const bool cold = std::string(cache) == "cold";
      const double seconds = median_seconds(
          options.reps,
          [&] {
            if (cold) evict(path);
          },
          [&] { checkpoint.load(path, target); });
      emit({"ckpt load " + codec, "load", cache, "float32", state.tensor_bytes(), file_size(path)}, seconds);
    }
  }
  // Opening maps the file and parses the header; the first tensor is borrowed
  // from the mapping (its checksum verified unless switched off) and touched.
  const std::string path = ckpt_file(options, "raw", "float32");
  for (const bool verify : {false, true}) {
    for (const char* cache : {"warm", "cold"}) {
      const bool cold = std::string(cache) == "cold";
      const double seconds = median_seconds(
          options.reps,
          [&] {
            if (cold) evict(path);
          },
          [&] {
            const ckpt::Reader reader(path, ckpt::ReadOptions{verify, 0});
            const ckpt::Tensor first = reader.tensor(reader.tensors().front().name);
            volatile std::byte touched = first.view().data()[0];
            (void)touched;
          });
      emit({std::string("ckpt open + first tensor") + (verify ? ", verified" : ""), "open", cache, "float32",
            state.tensor_bytes(), file_size(path)},
           seconds);
    }
  }
}

#ifdef CKPT_BENCH_WITH_TORCH
// torch::save only writes the file; the fsync gives it ckpt's durability.
void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) fail("cannot fsync " + path);
  ::close(fd);
}

void measure_libtorch(const Options& options, const State& state) {
  const std::string path = options.dir + "/state.pt";
  std::vector<torch::Tensor> tensors;
  for (const auto& layer : state.layers) {
    for (const auto* tensor : {&layer.weight, &layer.exp_avg, &layer.exp_avg_sq}) {
      tensors.push_back(torch::from_blob(const_cast<float*>(tensor->data()),
                                         {std::int64_t(layer.rows), std::int64_t(layer.cols)}, torch::kFloat32));
    }
  }
  const double save_s = median_seconds(
      options.reps, [&] { remove_if_present(path); },
      [&] {
        torch::save(tensors, path);
        fsync_path(path);
      });
  remove_if_present(path);
  const auto peak = static_cast<std::int64_t>(bench::peak_extra_bytes_in_child([&] {
    torch::save(tensors, path);
    fsync_path(path);
  }));
  emit({"libtorch torch::save", "save", "", "float32", state.tensor_bytes(), file_size(path), peak}, save_s);
  for (const char* cache : {"warm", "cold"}) {
    const bool cold = std::string(cache) == "cold";
    std::vector<torch::Tensor> loaded;
    const double load_s = median_seconds(
        options.reps,
        [&] {
          if (cold) evict(path);
        },
        [&] { torch::load(loaded, path); });
    emit({"libtorch torch::load", "load", cache, "float32", state.tensor_bytes(), file_size(path)}, load_s);
  }
  remove_if_present(path);
}
#endif

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--dir")
      options.dir = value;
    else if (flag == "--size-mib")
      options.size_mib = std::stoull(value);
    else if (flag == "--reps")
      options.reps = std::stoi(value);
    else
      fail("unknown flag " + flag + "; usage: ckpt_compare --dir DIR [--size-mib N] [--reps N]");
  }
  if (options.dir.empty() || options.reps < 1 || options.size_mib < 1) {
    fail("usage: ckpt_compare --dir DIR [--size-mib N] [--reps N]");
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  state_mib = options.size_mib;
  std::filesystem::create_directories(options.dir);
  const State state = bench::make_state<float>(options.size_mib << 20, 8);
  std::fprintf(stderr, "state: %zu tensors, %.1f MiB float32\n", 3 * state.layers.size(),
               double(state.tensor_bytes()) / (1 << 20));
  measure_limits(options, state);
  measure_ckpt_save(options, state, "float32");
  measure_encode(options, state, "float32");
  measure_async(options, state);
  measure_ckpt_load(options, state);
#ifdef CKPT_BENCH_WITH_TORCH
  measure_libtorch(options, state);
#endif
  const auto bf16 = bench::make_state<ckpt::bfloat16>(options.size_mib << 20, 8);
  measure_ckpt_save(options, bf16, "bfloat16");
  measure_encode(options, bf16, "bfloat16");
  for (const std::string& codec : codecs) {
    if (codec != "raw") remove_if_present(ckpt_file(options, codec, "float32"));
    remove_if_present(ckpt_file(options, codec, "bfloat16"));
  }
  return 0;  // state-float32-raw.safetensors stays for the Python peers
}

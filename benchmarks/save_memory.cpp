// Saves at growing state sizes: peak extra memory and speed against the
// disk's limit, measured side by side in one run (BENCHMARKS.md, "Save
// memory"). For each size and repetition, in this order:
//   limit      the same bytes written through the same atomic protocol as a
//              save (temp file, one write() per tensor, fsync, rename, fsync
//              of the directory);
//   limit with write-back  the same, each 8 MiB sent to disk as soon as it
//              is written (sync_file_range), as ckpt's durable saves do;
//   raw        ckpt::write_checkpoint, codec raw;
//   shuffle+zstd  the same, compressed.
// Peak extra memory is the process's peak resident set during the save minus
// its resident set before it (VmHWM reset through /proc/self/clear_refs), so
// it counts every thread, every allocator and the codec's own memory. Each
// target is printed with its limit: the median of per-repetition ratios.
//
//   ckpt_save_memory --dir DIR [--sizes-mib 256,1024,4096] [--reps 3]
//
// One JSON object per measurement on stdout, a table on stderr.

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_state.hpp"
#include "peak_memory.hpp"

namespace {

using State = bench::ModelState<float>;

struct Options {
  std::string dir;
  std::vector<std::uint64_t> sizes_mib = {256, 1024, 4096};
  int reps = 3;
};

[[noreturn]] void fail(const std::string& message) {
  std::fprintf(stderr, "ckpt_save_memory: %s\n", message.c_str());
  std::exit(1);
}

struct Run {
  double seconds = 0;
  std::uint64_t peak_extra = 0;  // bytes
};

template <class Body>
Run measure(const Body& body) {
  Run run;
  run.peak_extra = bench::peak_extra_bytes([&] {
    const auto start = bench::Clock::now();
    body();
    run.seconds = bench::seconds_since(start);
  });
  return run;
}

// How the limit writes: as most programs do (write, then one fsync), or as
// ckpt's durable saves do (each 8 MiB sent to disk as soon as it is written,
// detail/os/atomic_file.hpp), which is the faster protocol on this kernel.
enum class WriteBack { at_fsync, as_written };

constexpr std::size_t write_back_step = std::size_t(8) << 20;

// Appends `size` bytes at `offset`, which it advances.
void write_all(int fd, const void* data, std::size_t size, std::uint64_t& offset, WriteBack write_back) {
  const char* bytes = static_cast<const char*>(data);
  while (size > 0) {
    const std::size_t piece = write_back == WriteBack::as_written ? std::min(size, write_back_step) : size;
    const ssize_t written = ::write(fd, bytes, piece);
    if (written <= 0) fail("write failed");
    if (write_back == WriteBack::as_written) ::sync_file_range(fd, offset, written, SYNC_FILE_RANGE_WRITE);
    bytes += written;
    offset += static_cast<std::uint64_t>(written);
    size -= static_cast<std::size_t>(written);
  }
}

// The limit: the given pieces through ckpt's atomic protocol, nothing else.
void atomic_write(const std::string& path, const std::vector<std::pair<const void*, std::size_t>>& pieces,
                  WriteBack write_back) {
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create " + temp);
  std::uint64_t offset = 0;
  for (const auto& [data, size] : pieces) write_all(fd, data, size, offset, write_back);
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail("fsync failed");
  if (::rename(temp.c_str(), path.c_str()) != 0) fail("rename failed");
  const int directory = ::open(std::filesystem::path(path).parent_path().c_str(), O_RDONLY | O_DIRECTORY);
  if (directory < 0 || ::fsync(directory) != 0) fail("fsync of the directory failed");
  ::close(directory);
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

void emit(const std::string& name, std::uint64_t size_mib, int rep, const Run& run, std::uint64_t file_bytes) {
  const nlohmann::json line = {{"name", name},
                               {"state_mib", size_mib},
                               {"rep", rep},
                               {"seconds", run.seconds},
                               {"peak_extra_bytes", run.peak_extra},
                               {"file_bytes", file_bytes}};
  std::cout << line.dump() << std::endl;
}

// Returns the compressed save's peak extra memory.
std::uint64_t measure_size(const Options& options, std::uint64_t size_mib) {
  const State state = bench::make_state<float>(size_mib << 20, 8);
  const std::string limit_path = options.dir + "/limit.bin", ckpt_path = options.dir + "/state.safetensors";
  const std::vector<std::string> codecs = {"raw", "shuffle+zstd"};
  std::vector<double> raw_vs_limit, raw_vs_write_back, zstd_vs_raw, limit_s, write_back_s, raw_s, zstd_s;
  std::uint64_t raw_peak = 0, zstd_peak = 0, zstd_file = 0;
  for (int rep = 0; rep < options.reps; ++rep) {
    std::filesystem::remove(limit_path);
    const Run limit = measure([&] { atomic_write(limit_path, state.buffers(), WriteBack::at_fsync); });
    emit("limit: write+fsync, atomic", size_mib, rep, limit, state.tensor_bytes());
    std::filesystem::remove(limit_path);
    const Run write_back = measure([&] { atomic_write(limit_path, state.buffers(), WriteBack::as_written); });
    emit("limit: write+fsync, atomic, write-back as written", size_mib, rep, write_back, state.tensor_bytes());
    std::filesystem::remove(limit_path);
    std::vector<Run> runs;
    for (const std::string& codec : codecs) {
      std::filesystem::remove(ckpt_path);
      ckpt::SaveOptions save;
      save.codecs = ckpt::CodecPolicy(codec);
      const ckpt::Checkpoint<State> checkpoint(save);
      runs.push_back(measure([&] { checkpoint.save(ckpt_path, state); }));
      const std::uint64_t file_bytes = std::filesystem::file_size(ckpt_path);
      emit("ckpt save " + codec, size_mib, rep, runs.back(), file_bytes);
      if (codec != "raw") zstd_file = file_bytes;
    }
    std::filesystem::remove(ckpt_path);
    limit_s.push_back(limit.seconds);
    raw_s.push_back(runs[0].seconds);
    zstd_s.push_back(runs[1].seconds);
    write_back_s.push_back(write_back.seconds);
    raw_vs_limit.push_back(limit.seconds / runs[0].seconds);
    raw_vs_write_back.push_back(write_back.seconds / runs[0].seconds);
    zstd_vs_raw.push_back(runs[0].seconds / runs[1].seconds);
    raw_peak = std::max(raw_peak, runs[0].peak_extra);
    zstd_peak = std::max(zstd_peak, runs[1].peak_extra);
  }
  const double mib = double(1 << 20);
  std::fprintf(
      stderr,
      "%5llu MiB | limit %6.3f s (%4.0f MiB/s), with write-back %6.3f s | raw %6.3f s, %.2fx of limit [target >= "
      "0.97], %.2fx of limit with write-back, peak +%.1f MiB | "
      "shuffle+zstd %6.3f s, ratio %.2f, %.2fx of raw [target >= 1.00], peak +%.1f MiB\n",
      static_cast<unsigned long long>(size_mib), median(limit_s), double(state.tensor_bytes()) / mib / median(limit_s),
      median(write_back_s), median(raw_s), median(raw_vs_limit), median(raw_vs_write_back), double(raw_peak) / mib,
      median(zstd_s), double(state.tensor_bytes()) / double(zstd_file), median(zstd_vs_raw), double(zstd_peak) / mib);
  return zstd_peak;
}

// 100,000 tensors of 1 KiB (raw): the save against one write of the same
// 100 MiB through the same atomic protocol (target: within 2x).
void measure_small_tensors(const Options& options) {
  constexpr std::size_t count = 100000, tensor_bytes = 1024;
  std::vector<float> values(count * tensor_bytes / 4);
  for (std::size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 977) * 0.5f;
  std::vector<ckpt::NamedTensor> tensors;
  for (std::size_t t = 0; t < count; ++t) {
    tensors.push_back({"layer" + std::to_string(t / 10) + "/p" + std::to_string(t % 10),
                       ckpt::TensorView(ckpt::DType::F32, {tensor_bytes / 4}, values.data() + t * tensor_bytes / 4)});
  }
  const std::string limit_path = options.dir + "/limit.bin", ckpt_path = options.dir + "/small.safetensors";
  std::vector<double> ratios, save_s, limit_s;
  Run save_run;
  for (int rep = 0; rep < options.reps; ++rep) {
    std::filesystem::remove(limit_path);
    const Run limit = measure([&] {
      atomic_write(limit_path, {{values.data(), values.size() * 4}}, WriteBack::at_fsync);
    });
    std::filesystem::remove(limit_path);
    std::filesystem::remove(ckpt_path);
    save_run = measure([&] { ckpt::write_checkpoint(ckpt_path, tensors, {}); });
    emit("limit: one write+fsync, atomic (100,000 x 1 KiB)", 100, rep, limit, values.size() * 4);
    emit("ckpt save raw (100,000 x 1 KiB)", 100, rep, save_run, std::filesystem::file_size(ckpt_path));
    std::filesystem::remove(ckpt_path);
    save_s.push_back(save_run.seconds);
    limit_s.push_back(limit.seconds);
    ratios.push_back(save_run.seconds / limit.seconds);
  }
  std::fprintf(stderr,
               "100,000 x 1 KiB raw | limit %6.3f s | save %6.3f s, %.2fx the limit's time [target <= 2.00], "
               "peak +%.1f MiB\n",
               median(limit_s), median(save_s), median(ratios), double(save_run.peak_extra) / double(1 << 20));
}

Options parse(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--dir") {
      options.dir = value;
    } else if (flag == "--reps") {
      options.reps = std::stoi(value);
    } else if (flag == "--sizes-mib") {
      options.sizes_mib.clear();
      std::istringstream list(value);
      for (std::string size; std::getline(list, size, ',');) options.sizes_mib.push_back(std::stoull(size));
    } else {
      fail("unknown flag " + flag);
    }
  }
  if (options.dir.empty() || options.reps < 1 || options.sizes_mib.empty()) {
    fail("usage: ckpt_save_memory --dir DIR [--sizes-mib 256,1024,4096] [--reps 3]");
  }
  return options;
}

}  // namespace

int main(int argc, char** argv) {
  const Options options = parse(argc, argv);
  std::filesystem::create_directories(options.dir);
  std::fprintf(stderr,
               "ckpt save: peak extra memory (resident set) and speed against the limit, median of %d reps; "
               "default options (chunk 4 MiB, threads = cores = %u), target of peak: 2 x threads x chunk + header\n",
               options.reps, std::max(1u, std::thread::hardware_concurrency()));
  measure_small_tensors(options);
  std::vector<std::uint64_t> peaks;
  for (const std::uint64_t size : options.sizes_mib) peaks.push_back(measure_size(options, size));
  std::fprintf(stderr,
               "shuffle+zstd peak extra memory: %.1f MiB at %llu MiB, %.1f MiB at %llu MiB "
               "[target: largest <= smallest]\n",
               double(peaks.front()) / double(1 << 20), static_cast<unsigned long long>(options.sizes_mib.front()),
               double(peaks.back()) / double(1 << 20), static_cast<unsigned long long>(options.sizes_mib.back()));
  return 0;
}

// The MPI side of the distributed tests, run by the scripts next to it under
// mpirun. Every rank of the job runs the same command:
//
//   mpi_tool save DIR STEP [--codec C] [--async] [--kill RANK:POINT] [--full-disk RANK]
//   mpi_tool load DIR STEP
//
// save: each rank saves its piece of the sample state (sample_state.hpp,
// saving split); prints "saved step S" on rank 0, or each rank's error as
// "rank R error ID: MESSAGE" and exits 3.
// load: each rank loads its piece under the loading split and compares it
// byte for byte; prints "rank R loaded OK" or the differences (exit 1), or
// "rank R error ID: MESSAGE" (exit 3).
// --kill RANK:POINT makes rank RANK SIGKILL itself at POINT of the save:
// describe, write, rename, fsync (of its file, in this order), gather (its
// file done, before the commit's gather), index-write, index-rename (rank 0's
// index, before the commit point), broadcast (rank 0, after the commit).
// --full-disk RANK makes every write of rank RANK fail with ENOSPC.

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/adapters/mpi.hpp"
#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"

namespace {

[[noreturn]] void die_by_sigkill() {
  std::fflush(stdout);
  ::raise(SIGKILL);
  std::abort();  // not reached
}

// The file system of a rank that is killed at one call, or whose disk is full.
class FaultyFileSystem : public ckpt::detail::FileSystem {
 public:
  std::string kill_point;  // write, fsync, rename, index-write, index-rename
  bool disk_full = false;

  int open(const char* path, int flags, unsigned mode) override {
    const int fd = ckpt::detail::FileSystem::open(path, flags, mode);
    if (fd >= 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      paths_[fd] = path;
    }
    return fd;
  }
  long pwrite(int fd, const void* data, std::size_t size, std::uint64_t offset) override {
    if (disk_full) {
      errno = ENOSPC;
      return -1;
    }
    if ((kill_point == "write" && is_rank_file(fd)) || (kill_point == "index-write" && is_index(path_of(fd)))) {
      die_by_sigkill();
    }
    return ckpt::detail::FileSystem::pwrite(fd, data, size, offset);
  }
  int fsync(int fd) override {
    if (kill_point == "fsync" && path_of(fd).find("/model-") != std::string::npos) die_by_sigkill();
    return ckpt::detail::FileSystem::fsync(fd);
  }
  int rename(const char* from, const char* to) override {
    const std::string target = to;
    if ((kill_point == "rename" && target.find("/model-") != std::string::npos) ||
        (kill_point == "index-rename" && is_index(target))) {
      die_by_sigkill();
    }
    return ckpt::detail::FileSystem::rename(from, to);
  }

 private:
  static bool is_index(const std::string& path) {
    return path.find("model.safetensors.index.json") != std::string::npos;
  }
  bool is_rank_file(int fd) {
    const std::string path = path_of(fd);
    return path.find("/.model-") != std::string::npos;  // the temp file of this rank's file
  }
  std::string path_of(int fd) {
    std::lock_guard<std::mutex> lock(mutex_);
    const auto found = paths_.find(fd);
    return found == paths_.end() ? std::string() : found->second;
  }

  std::mutex mutex_;
  std::map<int, std::string> paths_;
};

// A communicator that kills its rank when a collective of the commit starts.
class KillingCommunicator final : public ckpt::Communicator {
 public:
  KillingCommunicator(ckpt::Communicator& inner, std::string kill_point)
      : inner_(inner), kill_point_(std::move(kill_point)) {}
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  std::vector<std::string> all_gather(std::string_view bytes) override { return inner_.all_gather(bytes); }
  std::vector<std::string> gather(std::string_view bytes, int root) override {
    if (kill_point_ == "gather") die_by_sigkill();
    return inner_.gather(bytes, root);
  }
  std::string broadcast(std::string_view bytes, int root) override {
    if (kill_point_ == "broadcast") die_by_sigkill();
    return inner_.broadcast(bytes, root);
  }
  bool allows_background_collectives() const override { return inner_.allows_background_collectives(); }
  std::unique_ptr<ckpt::Communicator> duplicate() override { return inner_.duplicate(); }

 private:
  ckpt::Communicator& inner_;
  std::string kill_point_;
};

struct Flags {
  std::string command, directory;
  std::uint64_t step = 0;
  std::string codec = "raw";
  bool async = false;
  int kill_rank = -1;
  std::string kill_point;
  int full_disk_rank = -1;
};

Flags parse(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: mpi_tool save|load DIR STEP [options]\n");
    std::exit(2);
  }
  Flags flags;
  flags.command = argv[1];
  flags.directory = argv[2];
  flags.step = std::strtoull(argv[3], nullptr, 10);
  for (int i = 4; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--async") {
      flags.async = true;
    } else if (flag == "--codec" && i + 1 < argc) {
      flags.codec = argv[++i];
    } else if (flag == "--kill" && i + 1 < argc) {
      const std::string value = argv[++i];
      flags.kill_rank = std::atoi(value.c_str());
      flags.kill_point = value.substr(value.find(':') + 1);
    } else if (flag == "--full-disk" && i + 1 < argc) {
      flags.full_disk_rank = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "mpi_tool: unknown flag %s\n", flag.c_str());
      std::exit(2);
    }
  }
  return flags;
}

// 0 when every rank passed `ok`, else the largest exit code of any rank, on every rank.
int agreed_exit_code(int mine) {
  int worst = 0;
  MPI_Allreduce(&mine, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}

int run_save(const Flags& flags, ckpt::Communicator& world) {
  const int rank = world.rank();
  const bool killed = rank == flags.kill_rank;
  FaultyFileSystem file_system;
  if (killed) file_system.kill_point = flags.kill_point;
  file_system.disk_full = rank == flags.full_disk_rank;
  ckpt::detail::set_file_system(&file_system);
  KillingCommunicator communicator(world, killed ? flags.kill_point : "");
  int code = 0;
  try {
    ckpt::DistributedOptions options;
    options.save.codecs = ckpt::CodecPolicy(flags.codec);
    options.save.chunk_bytes = 64;  // small chunks, so that loads cut through them
    options.async = flags.async;
    ckpt::DistributedCheckpoint<ckpt::test::SampleState> checkpoint(communicator, options);
    ckpt::test::SampleState state = ckpt::test::sample_for_saving(rank, world.size(), flags.step);
    if (killed && flags.kill_point == "describe") state.on_describe = die_by_sigkill;
    checkpoint.save(flags.directory, flags.step, state);
    const ckpt::DistributedSaveStats stats = checkpoint.wait();
    if (rank == 0) std::printf("saved step %llu\n", static_cast<unsigned long long>(flags.step));
    (void)stats;
  } catch (const ckpt::Error& error) {
    std::printf("rank %d error %d: %s\n", rank, static_cast<int>(error.id()), error.what());
    code = 3;
  }
  ckpt::detail::set_file_system(nullptr);
  return agreed_exit_code(code);
}

int run_load(const Flags& flags, ckpt::Communicator& world) {
  const int rank = world.rank();
  int code = 0;
  try {
    ckpt::test::SampleState state = ckpt::test::sample_for_loading(rank, world.size());
    ckpt::DistributedCheckpoint<ckpt::test::SampleState>(world).load(flags.directory, state);
    std::vector<std::string> problems = ckpt::test::sample_differences(state);
    if (state.step != flags.step) problems.push_back("step " + std::to_string(state.step));
    for (const std::string& problem : problems) std::printf("rank %d: %s\n", rank, problem.c_str());
    if (problems.empty()) std::printf("rank %d loaded OK\n", rank);
    code = problems.empty() ? 0 : 1;
  } catch (const ckpt::Error& error) {
    std::printf("rank %d error %d: %s\n", rank, static_cast<int>(error.id()), error.what());
    code = 3;
  }
  return agreed_exit_code(code);
}

}  // namespace

int main(int argc, char** argv) {
  ckpt::MpiSession mpi(argc, argv);
  const Flags flags = parse(argc, argv);
  ckpt::MpiCommunicator world;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (flags.command == "save") return run_save(flags, world);
  if (flags.command == "load") return run_load(flags, world);
  std::fprintf(stderr, "mpi_tool: unknown command %s\n", flags.command.c_str());
  return 2;
}

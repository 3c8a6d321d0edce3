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

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/adapters/mpi.hpp"
#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "support/fault_fs.hpp"

namespace {

[[noreturn]] void die_by_sigkill() {
  std::fflush(stdout);
  ::raise(SIGKILL);
  std::abort();  // not reached
}

// Makes this rank SIGKILL itself at `point` of a save: right before the first
// write of its file (write) or of the index (index-write), the fsync of its
// file (fsync), or the rename of its file or of the index into place.
void kill_at(ckpt::test::FaultFileSystem& file_system, const std::string& point) {
  using ckpt::test::FsCall;
  using ckpt::test::FsOp;
  const auto names = [](const std::string& part) {
    return [part](const std::string& path) { return path.find(part) != std::string::npos; };
  };
  const auto rank_temp_file = names("/.model-"), rank_file = names("/model-"),
             index = names("model.safetensors.index.json");
  if (point == "write")
    file_system.kill_before(FsOp::pwrite, [=](const FsCall& call) { return rank_temp_file(call.path); });
  if (point == "index-write")
    file_system.kill_before(FsOp::pwrite, [=](const FsCall& call) { return index(call.path); });
  if (point == "fsync") file_system.kill_before(FsOp::fsync, [=](const FsCall& call) { return rank_file(call.path); });
  if (point == "rename")
    file_system.kill_before(FsOp::rename, [=](const FsCall& call) { return rank_file(call.target); });
  if (point == "index-rename")
    file_system.kill_before(FsOp::rename, [=](const FsCall& call) { return index(call.target); });
}

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
  ckpt::test::FaultFileSystem file_system;
  if (killed) kill_at(file_system, flags.kill_point);
  if (rank == flags.full_disk_rank) file_system.limit_space(0);
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

#pragma once

// What a distributed checkpoint needs from the ranks of a job: who am I, how
// many are we, and four collectives on bytes. ckpt::MpiCommunicator
// (<ckpt/adapters/mpi.hpp>, target ckpt::mpi) implements it over MPI;
// SingleProcessCommunicator is a world of one, so that the same program runs
// without MPI (and a single process can load any distributed checkpoint).
// Other transports (NCCL's bootstrap, gloo, a test harness) implement the
// same five calls.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt {

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;  // 0 .. size() - 1
  virtual int size() const = 0;

  // Collectives: every rank calls each of them, in the same order.
  // Every rank receives every rank's bytes, in rank order.
  virtual std::vector<std::string> all_gather(std::string_view bytes) = 0;
  // `root` receives every rank's bytes in rank order; the others an empty vector.
  virtual std::vector<std::string> gather(std::string_view bytes, int root) = 0;
  // Every rank receives the bytes `root` passes (the others' are ignored).
  virtual std::string broadcast(std::string_view bytes, int root) = 0;

  // Whether a communicator from duplicate() may run collectives on a
  // background thread while the caller's thread goes on (for MPI: the
  // library granted MPI_THREAD_MULTIPLE). When false, an asynchronous save
  // writes in the background and commits at the next collective call.
  virtual bool allows_background_collectives() const { return false; }
  // A communicator over the same ranks whose traffic never mixes with this
  // one's; collective (every rank calls it).
  virtual std::unique_ptr<Communicator> duplicate() = 0;
};

// One process that is the whole world: rank 0 of 1.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::vector<std::string> all_gather(std::string_view bytes) override { return {std::string(bytes)}; }
  std::vector<std::string> gather(std::string_view bytes, int) override { return {std::string(bytes)}; }
  std::string broadcast(std::string_view bytes, int) override { return std::string(bytes); }
  bool allows_background_collectives() const override { return true; }
  std::unique_ptr<Communicator> duplicate() override { return std::make_unique<SingleProcessCommunicator>(); }
};

}  // namespace ckpt

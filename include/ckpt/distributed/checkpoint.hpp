#pragma once

// DistributedCheckpoint<State>: every rank saves its pieces of the state into
// one checkpoint directory, committed once for all ranks; any number of ranks,
// with any split, loads it back (docs/distributed.md).
//
//   ckpt::MpiCommunicator world;                        // or SingleProcessCommunicator
//   ckpt::DistributedCheckpoint<TrainState> checkpoint(world);
//   checkpoint.save("run/step-00000300", 300, state);   // collective: every rank calls it
//   checkpoint.load("run/step-00000300", state);        // collective, with this job's split

#include <cstdint>
#include <cstdio>
#include <exception>
#include <string>
#include <utility>

#include "ckpt/checkpoint.hpp"
#include "ckpt/describe.hpp"
#include "ckpt/detail/distributed/archives.hpp"
#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/load_protocol.hpp"
#include "ckpt/detail/distributed/save_protocol.hpp"
#include "ckpt/distributed/communicator.hpp"
#include "ckpt/distributed/sharding.hpp"
#include "ckpt/writer.hpp"

namespace ckpt {

struct DistributedOptions {
  SaveOptions save;  // each rank's file: codecs, chunk size, threads, durability
  LoadOptions load;  // strictness, checksum verification
  // Asynchronous saves: save() returns once the plan is agreed and this
  // rank's pieces are copied; the file is written, and the checkpoint
  // committed, in the background (or at the next call, when the
  // communicator does not allow background collectives). wait() returns
  // when the checkpoint is committed. At most one save is in flight.
  bool async = false;
  // Replace a committed checkpoint in the save's directory. It stops being
  // loadable when the save starts, not when the new one commits; without
  // this, such a save throws StateError state_exists.
  bool overwrite = false;
};

// One rank's figures for one save.
using DistributedSaveStats = detail::DistributedSaveStats;

template <class State>
class DistributedCheckpoint {
 public:
  // The communicator must outlive the checkpoint object.
  explicit DistributedCheckpoint(Communicator& communicator, DistributedOptions options = {})
      : communicator_(communicator), options_(std::move(options)), saver_(communicator) {}

  DistributedCheckpoint(const DistributedCheckpoint&) = delete;
  DistributedCheckpoint& operator=(const DistributedCheckpoint&) = delete;

  // Completes a save in flight (collectively, if its commit waits for a
  // call). A destructor cannot throw: a failure nobody collected with wait()
  // is written to stderr. Call wait() before shutting the communicator down.
  ~DistributedCheckpoint() {
    try {
      saver_.finish();
    } catch (const std::exception& error) {
      std::fprintf(stderr, "ckpt: a distributed save failed and was never reported: %s\n", error.what());
    }
  }

  // Saves `state` as the checkpoint of `step` in `directory` (created when
  // missing; a directory an unfinished save left is cleaned). Collective:
  // every rank calls it with the same directory and step, and none returns
  // before the checkpoint is committed (or, async, before its plan is
  // agreed). A failure on any rank throws the same error on every rank,
  // naming that rank, and commits nothing.
  DistributedSaveStats save(const std::string& directory, std::uint64_t step, const State& state) {
    const std::string path = detail::trimmed_directory(directory);
    return saver_.save(path, step, options_.save, options_.overwrite, options_.async, [&] {
      detail::DistributedSavingArchive archive(path);
      // describe() takes its object non-const so that one function serves
      // saving and loading; the saving archive only reads.
      archive.visit_root(const_cast<State&>(state));
      return std::move(archive).take();
    });
  }

  // Loads `state` from the checkpoint in `directory`, each rank reading only
  // the bytes of the pieces its state describes. Collective. Strict by
  // default: a missing tensor, a wrong dtype or global shape throws
  // MismatchError on every rank and loads nothing. A directory without an
  // index (an uncommitted save) throws StateError state_uncommitted.
  LoadReport load(const std::string& directory, State& state) {
    saver_.finish();
    return detail::load_distributed(
        communicator_, detail::trimmed_directory(directory), options_.load, options_.save.threads,
        [&state](detail::DistributedLoadingArchive& archive) { archive.visit_root(state); });
  }

  // Blocks until the save in flight is committed and returns its figures;
  // throws its failure. Collective when that save's commit waits for a call.
  DistributedSaveStats wait() { return saver_.finish(); }

  const DistributedOptions& options() const noexcept { return options_; }

 private:
  Communicator& communicator_;
  DistributedOptions options_;
  detail::DistributedSaver<Communicator> saver_;
};

}  // namespace ckpt

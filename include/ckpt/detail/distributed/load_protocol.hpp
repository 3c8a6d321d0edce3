#pragma once

// A distributed load, in two steps with one agreement each: every rank reads
// the index and checks its state against it (nothing is loaded unless every
// rank's state matches), then every rank reads the byte ranges its pieces
// need. Any rank's failure in a step fails the load on every rank, with the
// failing rank's error, so that no rank trains on while another has given up.

#include <optional>
#include <string>

#include "ckpt/checkpoint.hpp"
#include "ckpt/describe.hpp"
#include "ckpt/detail/distributed/archives.hpp"
#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/outcome.hpp"
#include "ckpt/detail/distributed/piece_reader.hpp"
#include "ckpt/reader.hpp"

namespace ckpt::detail {

// `walk(DistributedLoadingArchive&)` describes the state into the archive.
template <class Comm, class Walk>
LoadReport load_distributed(Comm& comm, const std::string& directory, const LoadOptions& options, unsigned threads,
                            Walk&& walk) {
  std::optional<CheckpointIndex> index;
  std::optional<DistributedLoadingArchive> archive;
  LoadReport report;
  agree_on_outcome(comm, run_step(comm.rank(), [&] {
                     index.emplace(read_index_of(directory));
                     archive.emplace(*index, directory);
                     walk(*archive);
                     report = archive->check(options.strict);
                     return std::string();
                   }));
  agree_on_outcome(comm, run_step(comm.rank(), [&] {
                     PieceReader<> reader(directory, *index, ReadOptions{options.verify_checksums, threads});
                     archive->load(reader);
                     return std::string();
                   }));
  return report;
}

}  // namespace ckpt::detail

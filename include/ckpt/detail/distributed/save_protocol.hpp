#pragma once

// A distributed save, in three steps (docs/distributed.md, "The commit"):
//
//   plan    (collective) every rank describes its pieces; the coordinator
//           (rank 0) readies the directory; every rank learns every rank's
//           description and computes the same plan: who writes what.
//   write   (local) each rank writes and fsyncs its file.
//   commit  (collective) the coordinator gathers every rank's outcome and
//           record, writes the index (temp file, fsync, rename, fsync of the
//           directory: the rename is the commit point) unless a rank failed,
//           and broadcasts the outcome. No rank returns before it is known;
//           after a failure every rank removes its file and throws the
//           failing rank's error.
//
// A failure in any step travels as that rank's outcome in the next
// collective (outcome.hpp), so every rank reaches every collective. An
// asynchronous save plans in the caller's thread, copies the pieces this
// rank writes, then writes in the background and commits there too when the
// communicator allows background collectives, or else at the next call.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/distributed/archives.hpp"
#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/incremental.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/outcome.hpp"
#include "ckpt/detail/distributed/save_plan.hpp"
#include "ckpt/detail/distributed/wire.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/manager/background_worker.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/writer.hpp"

namespace ckpt::detail {

// One rank's view of one save.
struct DistributedSaveStats {
  std::uint64_t step = 0;
  std::uint64_t rank_bytes = 0;        // tensor bytes this rank wrote
  std::uint64_t referenced_bytes = 0;  // an incremental save's bytes this rank referenced instead of writing
  std::uint64_t file_bytes = 0;        // size of this rank's file (0: it wrote none)
  std::uint64_t checkpoint_bytes = 0;  // tensor bytes of the whole checkpoint, replicas counted once
  double plan_seconds = 0;             // describe(), the exchange of descriptions, the plan, readying the directory
  double write_seconds = 0;            // writing and fsyncing this rank's file
  double commit_seconds = 0;           // gathering outcomes and records, the index, the broadcast of the outcome
  double seconds = 0;                  // from the call until the outcome was known
  double blocked_seconds = 0;          // how long save() held the caller
  bool async = false;
};

using StatsClock = std::chrono::steady_clock;

template <class = void>
double seconds_since(StatsClock::time_point start) {
  return std::chrono::duration<double>(StatsClock::now() - start).count();
}

// One rank's save between its plan and its commit.
struct PendingSave {
  std::string directory;
  std::uint64_t step = 0;
  SaveOptions options;
  std::shared_ptr<const SavePlan> plan;
  CollectedPieces collected;          // this rank's pieces (rank 0's metadata is the checkpoint's)
  std::vector<NamedTensor> to_write;  // stored name and bytes of each piece this rank writes
  ContentPlan<> content;              // an incremental save's references (distributed/incremental.hpp)
  std::optional<IndexChain> chain;    // the index's chain record, sources still to fill in
  std::vector<Tensor> staged;         // an asynchronous save's copies of them
  RankOutcome written;                // after the write: the encoded WrittenFile, or the failure
  DistributedSaveStats stats;
  StatsClock::time_point start;
};

// The pieces of `plan` that `rank` writes, with their bytes from `collected`.
template <class = void>
std::vector<NamedTensor> pieces_to_write(const SavePlan& plan, int rank, const CollectedPieces& collected) {
  std::map<std::pair<std::string, PieceGeometry>, std::size_t> held;
  for (std::size_t i = 0; i < collected.descriptions.size(); ++i) {
    held.emplace(std::make_pair(collected.descriptions[i].name, collected.descriptions[i].geometry), i);
  }
  std::vector<NamedTensor> pieces;
  for (const auto& [tensor, piece] : pieces_written_by(plan, rank)) {
    pieces.push_back({piece->stored_name, collected.views.at(held.at({tensor->name, piece->geometry}))});
  }
  return pieces;
}

// The index of a committed save: the plan, with what each writer recorded.
template <class = void>
CheckpointIndex build_index(const SavePlan& plan, const std::vector<WrittenFile>& files, std::uint64_t step,
                            const nlohmann::json& metadata, const std::optional<IndexChain>& chain) {
  CheckpointIndex index;
  index.chain = chain;
  if (index.chain) index.chain->sources = source_directories(files);
  index.step = step;
  index.world_size = files.size();
  index.metadata = metadata;
  std::map<std::string, const WrittenFile::Piece*> written;
  for (const WrittenFile& file : files) {
    if (file.name.empty()) continue;
    index.files[file.name] = IndexFile{file.bytes, file.header_xxh3};
    for (const WrittenFile::Piece& piece : file.pieces) written[piece.stored_name] = &piece;
  }
  for (const TensorPlan& tensor : plan.tensors) {
    IndexTensor& entry = index.tensors[tensor.name];
    entry.dtype = tensor.dtype;
    entry.shape = tensor.shape;
    for (const PiecePlan& piece : tensor.pieces) {
      const WrittenFile::Piece& record = *written.at(piece.stored_name);
      entry.pieces.push_back(IndexPiece{piece.geometry, plan.rank_files[piece.writer], piece.stored_name, record.codec,
                                        record.xxh3, record.raw_xxh3, record.xxh128});
      index.total_size += record.stored_bytes;
    }
  }
  return index;
}

// What every rank learns at the end of a commit: success, or the failure to throw.
template <class = void>
std::string encode_verdict(const std::optional<RankFailure>& failure, std::size_t failing_ranks) {
  WireWriter writer;
  writer.u64(failing_ranks);
  if (failure) writer.u64(static_cast<std::uint64_t>(failure->rank)).text(encode_outcome(RankOutcome{failure, {}}));
  return std::move(writer).take();
}

template <class = void>
void throw_verdict(std::string_view verdict, int world_size) {
  WireReader reader(verdict);
  const std::uint64_t failing = reader.u64();
  if (failing == 0) return;
  const int rank = static_cast<int>(reader.u64());
  const RankOutcome outcome = decode_outcome(reader.text(), rank);
  throw_rank_failure(*outcome.failure, world_size, failing);
}

// Rank 0's part of the commit: the index, unless a rank failed.
template <class = void>
std::string decide_commit(const std::vector<std::string>& gathered, const PendingSave& save) {
  const std::vector<RankOutcome> outcomes = decode_outcomes(gathered);
  const RankFailure* first = nullptr;
  std::size_t failing = 0;
  for (const RankOutcome& outcome : outcomes) {
    if (outcome.failure && failing++ == 0) first = &*outcome.failure;
  }
  if (first != nullptr) return encode_verdict(*first, failing);
  const RankOutcome committed = run_step(0, [&] {
    std::vector<WrittenFile> files;
    for (const RankOutcome& outcome : outcomes) files.push_back(decode_written_file(outcome.payload));
    const CheckpointIndex index = build_index(*save.plan, files, save.step, save.collected.metadata, save.chain);
    // The ranks renamed their files without fsyncing the directory: one
    // fsync makes every name durable before the index commits them.
    if (save.options.durable) fsync_directory(save.directory);
    write_index(save.directory, index, save.options.durable);
    return std::string();
  });
  if (!committed.failure) return encode_verdict(std::nullopt, 0);
  // A failure after the rename (the directory's fsync) must not leave an
  // index behind whose files the other ranks are about to remove.
  remove_quietly(index_path_of(save.directory));
  return encode_verdict(committed.failure, 1);
}

// The commit step (collective over `comm`); throws every rank's same error
// when the save failed anywhere.
template <class Comm>
void commit_save(Comm& comm, PendingSave& save) {
  const StatsClock::time_point start = StatsClock::now();
  const std::vector<std::string> gathered = comm.gather(encode_outcome(save.written), 0);
  const std::string verdict = comm.broadcast(comm.rank() == 0 ? decide_commit(gathered, save) : std::string(), 0);
  save.stats.commit_seconds = seconds_since(start);
  save.stats.seconds = seconds_since(save.start);
  WireReader reader(verdict);
  if (reader.u64() != 0 && save.plan && !save.written.failure) {
    const std::string& mine = save.plan->rank_files[comm.rank()];
    if (!mine.empty()) remove_quietly(join({save.directory, "/", mine}));
  }
  throw_verdict(verdict, comm.size());
}

// Writes this rank's file (the write step); never throws: the outcome goes
// to the commit.
template <class = void>
void write_pending(PendingSave& save, int rank) {
  if (save.written.failure) return;  // planning failed on this rank
  const StatsClock::time_point start = StatsClock::now();
  save.written = run_step(rank, [&] {
    const std::string& name = save.plan->rank_files[rank];
    if (name.empty()) return encode_written_file(WrittenFile{});
    const WrittenFile file = write_rank_file(save.directory, name, save.to_write, save.options, save.content);
    save.stats.file_bytes = file.bytes;
    return encode_written_file(file);
  });
  save.stats.write_seconds = seconds_since(start);
}

// Runs saves for one communicator: plans them, writes or hands them to a
// background thread, commits them, and keeps the last plan for as long as
// every rank describes the same pieces.
template <class Comm>
class DistributedSaver {
 public:
  explicit DistributedSaver(Comm& comm) : comm_(comm) {}

  // `collect` returns this rank's CollectedPieces (it walks describe()).
  template <class Collect>
  DistributedSaveStats save(const std::string& directory, std::uint64_t step, const SaveOptions& options,
                            bool overwrite, bool async, Collect&& collect) {
    finish();
    auto save = std::make_unique<PendingSave>();
    save->start = StatsClock::now();
    save->directory = directory;
    save->step = step;
    save->options = options;
    save->stats.step = step;
    save->stats.async = async;
    plan(*save, overwrite, std::forward<Collect>(collect));
    if (!async) {
      write_pending(*save, comm_.rank());
      commit_save(comm_, *save);
      save->stats.blocked_seconds = save->stats.seconds;
      return save->stats;
    }
    // The background writes from copies: the caller may change the state as soon as this returns.
    for (NamedTensor& piece : save->to_write) {
      save->staged.push_back(Tensor::copy_of(piece.view));
      piece.view = save->staged.back().view();
    }
    save->collected.views.clear();
    save->stats.blocked_seconds = seconds_since(save->start);
    if (comm_.allows_background_collectives() && !background_comm_) background_comm_ = comm_.duplicate();
    const DistributedSaveStats started = save->stats;  // the worker writes the pending save's from now on
    pending_ = std::move(save);
    commit_in_background_ = static_cast<bool>(background_comm_);
    PendingSave* job = pending_.get();
    worker_.submit([this, job] {
      write_pending(*job, comm_.rank());
      if (commit_in_background_) commit_save(*background_comm_, *job);
    });
    return started;
  }

  // Completes the save in flight, if any, and returns its statistics; throws
  // its failure. Collective when its commit waits for this call.
  DistributedSaveStats finish() {
    if (!pending_) return {};
    worker_.wait_idle();
    const std::unique_ptr<PendingSave> save = std::move(pending_);
    if (const std::exception_ptr failure = worker_.take_failure()) std::rethrow_exception(failure);
    if (!commit_in_background_) commit_save(comm_, *save);
    return save->stats;
  }

  bool pending() const noexcept { return static_cast<bool>(pending_); }

 private:
  template <class Collect>
  void plan(PendingSave& save, bool overwrite, Collect&& collect) {
    WireWriter description;
    const std::vector<std::string> hashes = all_gather_step(comm_, [&] {
      save.collected = collect();
      if (comm_.rank() == 0) prepare_directory(save.directory, overwrite, save.options.durable);
      encode_descriptions(description, save.collected.descriptions);
      WireWriter hash;
      hash.u64(xxh3(description.bytes().data(), description.bytes().size())).u64(description.bytes().size());
      return std::move(hash).take();
    });
    // The plan is every rank's to compute; a failure there (the ranks'
    // pieces do not fit together) is the same on every rank, and goes to
    // the commit like a failed write so that no rank is left waiting.
    if (!cache_.plan || cache_.hashes != hashes) {
      const std::vector<std::string> descriptions = all_gather_step(comm_, [&] { return description.bytes(); });
      save.written = run_step(comm_.rank(), [&] {
        std::vector<std::vector<PieceDescription>> by_rank;
        for (const std::string& bytes : descriptions) {
          WireReader reader(bytes);
          by_rank.push_back(decode_descriptions(reader));
          reader.expect_end();
        }
        cache_ = {hashes, std::make_shared<const SavePlan>(make_save_plan(by_rank, save.directory))};
        return std::string();
      });
      if (save.written.failure) cache_ = {};
    }
    if (!save.written.failure) {
      save.plan = cache_.plan;
      save.written = run_step(comm_.rank(), [&] {
        save.to_write = pieces_to_write(*save.plan, comm_.rank(), save.collected);
        return std::string();
      });
      save.stats.rank_bytes = save.plan->rank_bytes[comm_.rank()];
      for (std::uint64_t bytes : save.plan->rank_bytes) save.stats.checkpoint_bytes += bytes;
      const IncrementalOptions& incremental = save.options.incremental;
      if (!incremental.parent.empty() || incremental.content_hashes) compare_with_parent(save);
    }
    save.stats.plan_seconds = seconds_since(save.start);
  }

  // An incremental save (collective): every rank compares its pieces with
  // the parent, the ranks agree on the chain policy, and each keeps to
  // write only what the parent does not hold (opening the parent's files
  // holding its xor-delta bases: a failure there goes to the commit).
  void compare_with_parent(PendingSave& save) {
    std::optional<ParentCheckpoint> parent;
    BoxComparison comparison;
    const IncrementalOptions& incremental = save.options.incremental;
    const std::vector<std::string> comparisons = all_gather_step(comm_, [&] {
      parent = read_parent_checkpoint(save.directory, incremental);
      comparison = compare_boxes(*save.plan, comm_.rank(), save.to_write, parent, save.directory, incremental.xor_delta,
                                 save.options.threads);
      return encode_comparison_bytes(comparison);
    });
    save.chain = agreed_chain(comparisons, parent, save.directory, incremental);
    if (save.written.failure) return;
    save.written = run_step(comm_.rank(), [&] {
      save.content = rank_content_plan(save.to_write, std::move(comparison), save.chain);
      save.to_write = std::move(save.content.stored);
      save.content.stored.clear();
      return std::string();
    });
    save.stats.referenced_bytes = save.content.referenced_bytes;
    save.stats.rank_bytes -= save.content.referenced_bytes;
  }

  struct PlanCache {
    std::vector<std::string> hashes;  // every rank's description hash the plan was made from
    std::shared_ptr<const SavePlan> plan;
  };

  Comm& comm_;
  PlanCache cache_;
  std::unique_ptr<PendingSave> pending_;
  bool commit_in_background_ = false;
  decltype(std::declval<Comm&>().duplicate()) background_comm_;
  BackgroundWorker<> worker_;
};

}  // namespace ckpt::detail

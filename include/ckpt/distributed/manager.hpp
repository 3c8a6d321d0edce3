#pragma once

// DistributedCheckpointManager: the CheckpointManager of a job of many ranks
// (docs/manager.md, "Across ranks"). Same options, same calls; every rank
// constructs it with the same directory and options and makes the same calls
// in the same order. Each step is one distributed checkpoint directory
// (docs/distributed.md) named by the manager's template.
//
//   ckpt::MpiCommunicator world;
//   ckpt::DistributedCheckpointManager manager(world, "runs/exp1", options);
//   manager.restore_or_initialize(state, initialize);   // any number of ranks
//   for (...) { train_step(state); manager.maybe_save(state.step, state); }
//
// Every decision is made once and every rank learns it, so that the ranks
// save at the same steps, keep the same checkpoints and resume from the same
// one:
//
//   should_save  rank 0 applies the save policy with its own clock; every rank
//                adds whether a preemption signal reached it and whether its
//                background save is still running: one all-gather of three
//                bytes per rank and step.
//   save         rank 0 names the checkpoint (its step info is the one
//                recorded); every rank saves its pieces into the step's
//                directory (DistributedSaver); after the commit rank 0 applies
//                the retention policy and every rank learns the outcome.
//   restore      rank 0 lists the committed steps; for each, newest first, the
//                ranks verify the files between them and agree on the verdict
//                before a collective load touches the state.
//   async        the state is copied into this rank's staging buffer, reused by
//                every save; the save, its commit and the rotation run on a
//                background thread over a duplicate of the communicator, where
//                every step ends in an agreement, so every rank's background
//                job ends with the same outcome. It is reported at a call
//                every rank makes (the first should_save once no rank is
//                busy, or wait, save, restore*, pin).
//
// A separate class rather than a constructor of CheckpointManager: a state
// with shards must never reach the single-file code (it does not compile,
// by design), and a constructor cannot choose which code a call compiles.

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/distributed/archives.hpp"
#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/load_protocol.hpp"
#include "ckpt/detail/distributed/manager_catalog.hpp"
#include "ckpt/detail/distributed/outcome.hpp"
#include "ckpt/detail/distributed/save_protocol.hpp"
#include "ckpt/detail/distributed/verify.hpp"
#include "ckpt/detail/manager/background_worker.hpp"
#include "ckpt/detail/manager/chain_retention.hpp"
#include "ckpt/detail/manager/checkpoint_catalog.hpp"
#include "ckpt/detail/manager/checkpoint_naming.hpp"
#include "ckpt/detail/manager/preemption.hpp"
#include "ckpt/detail/manager/retention.hpp"
#include "ckpt/detail/manager/save_schedule.hpp"
#include "ckpt/detail/manager/staging_buffer.hpp"
#include "ckpt/detail/os/directory_lock.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/distributed/communicator.hpp"
#include "ckpt/error.hpp"
#include "ckpt/manager.hpp"
#include "ckpt/manager_policies.hpp"

namespace ckpt {

// Members that do more than a few lines are templates only so that programs
// without a manager do not compile them (see "Compile time" in
// docs/architecture.md).
class DistributedCheckpointManager {
 public:
  // Collective. Rank 0 creates the directory, takes the job's lock (held
  // until the manager is destroyed) and removes what a killed job left; its
  // failure (another job holds the directory) is thrown on every rank. The
  // communicator must outlive the manager.
  template <class = void>
  DistributedCheckpointManager(Communicator& communicator, std::string directory, ManagerOptions options = {})
      : comm_(communicator),
        directory_(detail::trimmed_directory(std::move(directory))),
        options_(std::move(options)),
        naming_(options_.name_template),
        clock_(options_.clock ? options_.clock : Clock(system_clock_seconds)) {
    detail::check_save_policy(options_.save_policy, directory_);
    detail::agree_on_outcome(comm_, detail::run_step(comm_.rank(), [&] {
                               if (comm_.rank() == 0) open_directory();
                               return std::string();
                             }));
    if (!options_.read_only && options_.save_policy.on_preemption) {
      preemption_ = std::make_unique<detail::PreemptionHandler>(options_.save_policy.preemption_signals);
    }
    signals_handled_ = detail::PreemptionHandler::signals_received();
    if (options_.async && !options_.read_only && comm_.allows_background_collectives()) {
      background_comm_ = comm_.duplicate();
    }
    saver_ = std::make_unique<detail::DistributedSaver<Communicator>>(background_comm_ ? *background_comm_ : comm_);
  }

  DistributedCheckpointManager(const DistributedCheckpointManager&) = delete;
  DistributedCheckpointManager& operator=(const DistributedCheckpointManager&) = delete;

  // Finishes the pending save (its commit is collective: every rank's
  // manager must be destroyed). A failure nobody collected goes to stderr.
  ~DistributedCheckpointManager() {
    worker_.wait_idle();
    detail::write_uncollected_failure(worker_.take_failure());
  }

  const std::string& directory() const noexcept { return directory_; }
  const ManagerOptions& options() const noexcept { return options_; }

  // Whether the save policy asks for a save at `step`: the same answer on
  // every rank. Collective (one small all-gather), and it reports a failed
  // background save once no rank is still busy with it.
  bool should_save(std::uint64_t step) { return decide(step).due; }

  // True on every rank once a preemption signal reached any rank (learnt at
  // the step boundary where every rank saves for it).
  bool preemption_requested() const { return preemption_agreed_; }

  // Collective: saves when the policy says so, on every rank or on none.
  template <class State>
  bool maybe_save(std::uint64_t step, const State& state, const StepInfo& info = {}) {
    const Decision decision = decide(step);
    if (!decision.due) return false;
    if (decision.busy) {
      const bool may_skip = options_.when_busy == ManagerOptions::WhenBusy::skip && !decision.preempted;
      if (may_skip) return false;
      wait();
    }
    save_now(step, state, info, decision.signals);
    return true;
  }

  // A forced save, whatever the policy says. Collective.
  template <class State>
  bool save(std::uint64_t step, const State& state, const StepInfo& info = {}) {
    wait();
    // A signal that arrives meanwhile is left for the next maybe_save, where
    // every rank learns of it.
    save_now(step, state, info, signals_handled_);
    return true;
  }

  // Blocks until the pending save is committed; throws its failure, the
  // same on every rank.
  void wait() {
    worker_.wait_idle();
    report_failure();
  }

  // Committed steps, oldest first, as this rank reads the directory (not
  // collective; it reports no background failure).
  template <class = void>
  std::vector<CheckpointInfo> list() const {
    return detail::scan_step_directories(directory_, naming_);
  }

  template <class = void>
  std::optional<CheckpointInfo> latest() const {
    std::vector<CheckpointInfo> checkpoints = list();
    if (checkpoints.empty()) return std::nullopt;
    return std::move(checkpoints.back());
  }

  // Collective: loads the newest step that every rank can read and verify,
  // with this job's number of ranks and split. Steps any rank finds corrupt
  // or incomplete are skipped by every rank and reported in `skipped`.

  template <class State>
  RestoreResult restore_latest(State& state) {
    wait();
    return restore_newest_valid(agreed_checkpoints(), state);
  }

  // Collective: exactly that step; its error is thrown as is, on every rank.
  // The files are verified before the load, so a corrupt step throws with
  // the state untouched.
  template <class State>
  RestoreResult restore(std::uint64_t step, State& state) {
    wait();
    for (const CheckpointInfo& info : agreed_checkpoints()) {
      if (info.step != step) continue;
      RestoreResult result;
      result.report = verify_and_load(info.path, state);
      result.restored = true;
      result.checkpoint = info;
      last_saved_step_ = step;
      return result;
    }
    throw StateError(ErrorId::state_not_found, directory_, "",
                     detail::join({"expected a committed checkpoint directory of step ", step, " named like '",
                                   naming_.pattern(), "', found none"}));
  }

  // Collective: restore_latest, or initialize(state) when the directory holds
  // no committed step.
  template <class State, class Initialize>
  RestoreResult restore_or_initialize(State& state, Initialize&& initialize) {
    wait();
    const std::vector<CheckpointInfo> checkpoints = agreed_checkpoints();
    if (checkpoints.empty()) {
      std::forward<Initialize>(initialize)(state);
      last_saved_step_ = std::nullopt;
      return RestoreResult{};
    }
    return restore_newest_valid(checkpoints, state);
  }

  // Collective: rank 0 records the pin in the manager's index.
  template <class = void>
  void pin(std::uint64_t step) {
    set_pinned(step, true);
  }
  template <class = void>
  void unpin(std::uint64_t step) {
    set_pinned(step, false);
  }

 private:
  template <class = void>
  void set_pinned(std::uint64_t step, bool pinned) {
    require_writable("pin or unpin");
    wait();
    detail::broadcast_step(comm_, [&] {
      std::vector<CheckpointInfo> checkpoints = detail::scan_step_directories(directory_, naming_);
      detail::set_pin(checkpoints, step, pinned, directory_);
      detail::write_index(directory_, checkpoints, options_.save.durable);
      return std::string();
    });
  }

  // What every rank learns at a step boundary.
  struct Decision {
    bool due = false;
    bool preempted = false;  // a preemption signal reached some rank
    bool busy = false;       // some rank's background save is still running
    // The signals this rank had received when it joined the exchange: what
    // a save made on this decision answers (a later one is not agreed yet).
    std::uint64_t signals = 0;
  };

  template <class = void>
  void open_directory() {
    if (options_.read_only) return;
    detail::create_directories(directory_, options_.save.durable);
    lock_ = std::make_unique<detail::DirectoryLock>(directory_);
    detail::remove_step_leftovers(directory_, naming_, options_.save.durable);
    const std::vector<CheckpointInfo> existing = detail::scan_step_directories(directory_, naming_);
    if (!existing.empty()) last_saved_step_ = existing.back().step;
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    schedule_.last_save_end = clock_();
  }

  void require_writable(const char* action) const { detail::require_writable(options_.read_only, directory_, action); }

  // One all-gather: rank 0's verdict on the save policy (its clock, its
  // schedule), and each rank's preemption signal and background state.
  template <class = void>
  Decision decide(std::uint64_t step) {
    enum : char { due_by_policy = 1, already_saved = 2 };  // else 0: not due
    std::string mine(3, '\0');
    if (comm_.rank() == 0) {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      detail::ScheduleState state = schedule_;
      state.last_saved_step = last_saved_step_;
      if (last_saved_step_ == step) {
        mine[0] = already_saved;
      } else if (detail::save_due(options_.save_policy, state, step, clock_())) {
        mine[0] = due_by_policy;
      }
    }
    Decision decision;
    decision.signals = detail::PreemptionHandler::signals_received();
    mine[1] = preemption_ && decision.signals != signals_handled_ ? 1 : 0;
    mine[2] = worker_.busy() ? 1 : 0;
    const std::vector<std::string> all = comm_.all_gather(mine);
    for (const std::string& rank : all) {
      decision.preempted = decision.preempted || rank.at(1) != 0;
      decision.busy = decision.busy || rank.at(2) != 0;
    }
    decision.preempted = decision.preempted && options_.save_policy.on_preemption;
    decision.due = all.at(0).at(0) == due_by_policy || (decision.preempted && all.at(0).at(0) != already_saved);
    if (decision.preempted) preemption_agreed_ = true;
    // No rank is busy: every background save has ended, with the same
    // outcome on every rank, so every rank reports it here.
    if (!decision.busy) report_failure();
    return decision;
  }

  void report_failure() {
    if (const std::exception_ptr failure = worker_.take_failure()) std::rethrow_exception(failure);
  }

  template <class State>
  void save_now(std::uint64_t step, const State& state, const StepInfo& info, std::uint64_t signals) {
    require_writable("save");
    const auto started = detail::StatsClock::now();
    // One name per step: rank 0's, with its time, epoch and metrics.
    const CheckpointInfo checkpoint =
        detail::decode_checkpoints(detail::broadcast_step(comm_, [&] {
          CheckpointInfo named;
          named.step = step;
          named.epoch = info.epoch;
          named.metrics = info.metrics;
          named.time = clock_();
          named.path = detail::join({directory_, "/", naming_.file_name({step, info.epoch, info.metrics})});
          return detail::encode_checkpoints({named});
        })).at(0);
    if (!background_comm_) {
      commit(
          comm_, checkpoint, [&] { return collect(checkpoint, state); }, started, std::nullopt);
      record_save(step, signals, detail::seconds_since(started));
      return;
    }
    // The staging copy is all the loop waits for. A failure here (describe()
    // threw) goes to the background save, whose plan makes it every rank's.
    auto job = std::make_shared<StagedSave>();
    job->checkpoint = checkpoint;
    try {
      job->collected = collect(checkpoint, state);
      std::vector<NamedTensor> views;
      views.reserve(job->collected.views.size());
      for (const TensorView& view : job->collected.views) views.push_back(NamedTensor{std::string(), view});
      const std::vector<NamedTensor> staged = staging_.stage(views, options_.save.threads);
      for (std::size_t i = 0; i < staged.size(); ++i) job->collected.views[i] = staged[i].view;
      job->collected.owned.clear();
    } catch (...) {
      job->failure = std::current_exception();
    }
    const double blocked = detail::seconds_since(started);
    record_save(step, signals, blocked);
    worker_.submit([this, job, started, blocked] {
      try {
        commit(
            *background_comm_, job->checkpoint,
            [job] {
              if (job->failure) std::rethrow_exception(job->failure);
              return std::move(job->collected);
            },
            started, blocked);
      } catch (const Error& error) {
        error.rethrow_with(job->checkpoint.path, "",
                           detail::join({"background save of step ", job->checkpoint.step, ": "}));
      }
    });
  }

  struct StagedSave {
    CheckpointInfo checkpoint;
    detail::CollectedPieces collected;
    std::exception_ptr failure;
  };

  // This rank's pieces of `state`, with the manager's record in the metadata.
  template <class State>
  detail::CollectedPieces collect(const CheckpointInfo& checkpoint, const State& state) const {
    detail::DistributedSavingArchive archive(checkpoint.path);
    // describe() takes its object non-const; the saving archive only reads.
    archive.visit_root(const_cast<State&>(state));
    detail::CollectedPieces collected = std::move(archive).take();
    collected.metadata[detail::manager_metadata_key] = detail::checkpoint_record(checkpoint);
    return collected;
  }

  void record_save(std::uint64_t step, std::uint64_t signals, double blocked) {
    last_saved_step_ = step;
    signals_handled_ = signals;
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    schedule_.last_save_end = clock_();
    schedule_.blocked_seconds = blocked;
  }

  // The save (plan, write, commit), then the rotation on rank 0, then the
  // hook on every rank: each step ends in an agreement over `comm`, so every
  // rank leaves with the same outcome.
  template <class Collect>
  void commit(Communicator& comm, const CheckpointInfo& checkpoint, Collect&& collect,
              detail::StatsClock::time_point started, std::optional<double> async_blocked) {
    SaveOptions save_options = options_.save;
    if (options_.incremental) {
      // Rank 0's choice, so that every rank names the same parent.
      save_options.incremental.content_hashes = true;
      save_options.incremental.parent = detail::broadcast_step(comm, [&] {
        return detail::incremental_parent(detail::scan_step_directories(directory_, naming_), checkpoint.step,
                                          [](const std::string& path) {
                                            try {
                                              detail::read_index_of(path);
                                              return true;
                                            } catch (const Error&) {
                                              return false;
                                            }
                                          })
            .value_or("");
      });
    }
    const detail::DistributedSaveStats stats =
        saver_->save(checkpoint.path, checkpoint.step, save_options, true, false, std::forward<Collect>(collect));
    SaveEvent event;
    const std::vector<std::string> rotated = detail::all_gather_step(comm, [&] {
      if (comm.rank() != 0) return std::string();
      detail::WireWriter deleted;
      for (const std::string& path : rotate(checkpoint.step)) deleted.text(path);
      return std::move(deleted).take();
    });
    for (detail::WireReader reader(rotated.at(0)); !reader.at_end();) event.deleted.push_back(reader.text());
    event.step = checkpoint.step;
    event.path = checkpoint.path;
    event.file_bytes = stats.file_bytes;
    event.tensor_bytes = stats.rank_bytes;
    event.seconds = detail::seconds_since(started);
    event.blocked_seconds = async_blocked.value_or(event.seconds);
    event.compression_ratio =
        stats.file_bytes == 0 ? 1.0 : static_cast<double>(stats.rank_bytes) / static_cast<double>(stats.file_bytes);
    event.async = async_blocked.has_value();
    if (event.async) {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      schedule_.background_seconds = event.seconds - event.blocked_seconds;
    }
    if (options_.on_save) {
      detail::agree_on_outcome(comm, detail::run_step(comm.rank(), [&] {
                                 options_.on_save(event);
                                 return std::string();
                               }));
    }
  }

  // Rank 0, after a commit: deletes the steps the retention policy no longer
  // keeps, crash-safely, and returns their paths.
  template <class = void>
  std::vector<std::string> rotate(std::uint64_t just_committed) {
    std::vector<CheckpointInfo> checkpoints = detail::scan_step_directories(directory_, naming_);
    std::vector<std::string> deleted;
    // Never a directory a kept checkpoint of a chain still reads from.
    std::vector<std::uint64_t> doomed = detail::unreachable_checkpoints(
        checkpoints, detail::checkpoints_to_delete(checkpoints, options_.retention, just_committed),
        detail::chain_sources_of_directory<>);
    // Newest first: a checkpoint's sources are older, so a kill between two
    // deletions leaves every listed checkpoint with its whole chain.
    std::sort(doomed.begin(), doomed.end(), std::greater<>());
    for (std::uint64_t step : doomed) {
      const auto found = std::find_if(checkpoints.begin(), checkpoints.end(),
                                      [&](const CheckpointInfo& info) { return info.step == step; });
      detail::delete_step_directory(found->path, options_.save.durable);
      deleted.push_back(found->path);
      checkpoints.erase(found);
    }
    detail::write_index(directory_, checkpoints, options_.save.durable);
    return deleted;
  }

  // Rank 0's list of committed steps, the same on every rank.
  template <class = void>
  std::vector<CheckpointInfo> agreed_checkpoints() {
    return detail::decode_checkpoints(detail::broadcast_step(
        comm_, [&] { return detail::encode_checkpoints(detail::scan_step_directories(directory_, naming_)); }));
  }

  // Throws on every rank the first problem the ranks found in the files of
  // the checkpoint in `path` (each rank verifies every size()-th file), of
  // its own kind and id, naming the rank that found it.
  template <class = void>
  void verify_collectively(const std::string& path) {
    detail::agree_on_outcome(comm_, detail::run_step(comm_.rank(), [&] {
                               const detail::CheckpointIndex index = detail::read_index_of(path);
                               const auto ranks = static_cast<std::size_t>(comm_.size());
                               std::size_t position = 0;
                               for (const auto& [name, expected] : index.files) {
                                 if (position++ % ranks != static_cast<std::size_t>(comm_.rank())) continue;
                                 const detail::DistributedVerification::File file =
                                     detail::verify_committed_file(path, name, expected);
                                 if (file.first_problem) std::rethrow_exception(file.first_problem);
                               }
                               return std::string();
                             }));
  }

  // Every restore's load: the files verified by the ranks together first,
  // so that no byte reaches the state from a checkpoint that fails.
  template <class State>
  LoadReport verify_and_load(const std::string& path, State& state) {
    if (!options_.load.verify_checksums) return load(path, state, options_.load);
    verify_collectively(path);
    LoadOptions verified = options_.load;
    verified.verify_checksums = false;  // just done, every file
    return load(path, state, verified);
  }

  template <class State>
  LoadReport load(const std::string& path, State& state, const LoadOptions& options) {
    return detail::load_distributed(
        comm_, path, options, options_.save.threads,
        [&state](detail::DistributedLoadingArchive& archive) { archive.visit_root(state); });
  }

  // Newest first: a checkpoint that any rank finds corrupt or incomplete is
  // skipped by every rank; a state that does not match a valid one throws.
  template <class State>
  RestoreResult restore_newest_valid(const std::vector<CheckpointInfo>& candidates, State& state) {
    RestoreResult result;
    for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
      try {
        result.report = verify_and_load(it->path, state);
        result.restored = true;
        result.checkpoint = *it;
        last_saved_step_ = it->step;
        return result;
      } catch (const MismatchError&) {
        throw;
      } catch (const Error& error) {
        result.skipped.push_back(SkippedCheckpoint{it->step, it->path, error.what()});
      }
    }
    std::vector<std::string> reasons;
    for (const SkippedCheckpoint& skipped : result.skipped) reasons.push_back(skipped.reason);
    detail::throw_no_valid_checkpoint(
        directory_, detail::join({"a valid checkpoint directory named like '", naming_.pattern(), "'"}),
        candidates.size(), reasons);
  }

  Communicator& comm_;
  std::string directory_;
  ManagerOptions options_;
  detail::CheckpointNaming<> naming_;
  Clock clock_;
  std::unique_ptr<detail::DirectoryLock> lock_;  // rank 0's
  std::unique_ptr<detail::PreemptionHandler> preemption_;
  std::uint64_t signals_handled_ = 0;  // preemption signals a save already answered (this process)
  bool preemption_agreed_ = false;
  std::optional<std::uint64_t> last_saved_step_;  // the same on every rank
  std::mutex schedule_mutex_;                     // rank 0's schedule; the background part sets its cost
  detail::ScheduleState schedule_;
  std::unique_ptr<Communicator> background_comm_;
  std::unique_ptr<detail::DistributedSaver<Communicator>> saver_;
  detail::StagingBuffer staging_;
  // Last member: destroyed first, so a pending job never outlives what it uses.
  detail::BackgroundWorker<> worker_;
};

}  // namespace ckpt

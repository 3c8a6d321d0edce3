#pragma once

// CheckpointManager: when to save, what to keep and how to resume, for one
// directory of checkpoints. See docs/manager.md for a guide.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.hpp"
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
#include "ckpt/error.hpp"
#include "ckpt/manager_policies.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"

namespace ckpt {

// What the manager tells the on_save hook after each committed save.
struct SaveEvent {
  std::uint64_t step = 0;
  std::string path;
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;
  double seconds = 0;                // the whole save, from the call to the commit
  double blocked_seconds = 0;        // how long the training loop waited
  double compression_ratio = 1;      // tensor bytes / file bytes
  std::vector<std::string> deleted;  // checkpoints the rotation removed after this one was durable
  bool async = false;
};

// Optional facts about the step being saved: the epoch and metrics, for the
// file name template and for best-K retention.
struct StepInfo {
  std::optional<std::uint64_t> epoch;
  std::map<std::string, double> metrics;
};

struct SkippedCheckpoint {
  std::uint64_t step = 0;
  std::string path;
  std::string reason;  // the error that made it unusable
};

struct RestoreResult {
  bool restored = false;  // false: nothing to restore, the state was initialised
  CheckpointInfo checkpoint;
  std::vector<SkippedCheckpoint> skipped;  // newer checkpoints found corrupt or truncated
  LoadReport report;
};

struct ManagerOptions {
  // Zero-padded step and optional {epoch} and metric fields; see detail/checkpoint_naming.hpp.
  std::string name_template = "ckpt-{step:08}.safetensors";
  SavePolicy save_policy;
  RetentionPolicy retention;
  SaveOptions save;  // codecs, chunk size, threads, durability
  LoadOptions load;  // strictness and checksum verification of restores
  // Asynchronous saves: the training loop waits only while the state is
  // copied into a staging buffer; encoding, writing and committing run on a
  // background thread. At most one save is in flight.
  bool async = false;
  // When a save falls due while the previous one is still in flight:
  // `wait` blocks until it is committed, `skip` drops the new one (maybe_save
  // returns false). Explicit save() calls and preemption saves always wait.
  enum class WhenBusy { wait, skip } when_busy = WhenBusy::wait;
  // Incremental saves: each save references the unchanged tensors of the
  // newest committed checkpoint instead of writing them, under the chain
  // policy of save.incremental; retention keeps every file a kept
  // checkpoint needs (detail/manager/chain_retention.hpp). A
  // DistributedCheckpointManager references unchanged boxes of the newest
  // step directory and keeps every directory a kept one reads from.
  bool incremental = false;
  // Lists and restores only: takes no lock, cleans nothing, saves nothing.
  // Works beside a writer in another process.
  bool read_only = false;
  Clock clock;  // empty: system_clock_seconds
  // Called after every committed save (on the background thread for async saves).
  std::function<void(const SaveEvent&)> on_save;
};

// Members that do more than a few lines are templates only so that programs
// without a manager do not compile them (see "Compile time" in
// docs/architecture.md).
class CheckpointManager {
 public:
  template <class = void>
  explicit CheckpointManager(std::string directory, ManagerOptions options = {})
      : directory_(trimmed(std::move(directory))),
        options_(std::move(options)),
        naming_(options_.name_template),
        clock_(options_.clock ? options_.clock : Clock(system_clock_seconds)) {
    detail::check_save_policy(options_.save_policy, directory_);
    if (!options_.read_only) {
      detail::create_directories(directory_, options_.save.durable);
      lock_.emplace(directory_);
      detail::remove_stale_temp_files(directory_, naming_);
      if (options_.save_policy.on_preemption) {
        preemption_.emplace(options_.save_policy.preemption_signals);
      }
    }
    signals_at_start_ = detail::PreemptionHandler::signals_received();
    signals_handled_ = signals_at_start_;
    const std::vector<CheckpointInfo> existing = scan();
    if (!existing.empty()) schedule_.last_saved_step = existing.back().step;
    schedule_.last_save_end = clock_();
  }

  CheckpointManager(const CheckpointManager&) = delete;
  CheckpointManager& operator=(const CheckpointManager&) = delete;

  const std::string& directory() const noexcept { return directory_; }
  const ManagerOptions& options() const noexcept { return options_; }

  // Whether the save policy asks for a save at `step`. No side effects.
  template <class = void>
  bool should_save(std::uint64_t step) const {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    detail::ScheduleState state = schedule_;
    state.preemption_pending = preemption_pending();
    return detail::save_due(options_.save_policy, state, step, clock_());
  }

  // True once a preemption signal arrived while this manager's handler was installed.
  bool preemption_requested() const {
    return preemption_ && detail::PreemptionHandler::signals_received() != signals_at_start_;
  }

  // Saves when the policy says so; the call to put at the end of every step.
  // Returns whether a save was made (or started, for async saves).
  template <class State>
  bool maybe_save(std::uint64_t step, const State& state, const StepInfo& info = {}) {
    report_background_failure();
    if (!should_save(step)) return false;
    const bool may_skip = options_.when_busy == ManagerOptions::WhenBusy::skip && !preemption_pending();
    return save_now(step, state, info, may_skip);
  }

  // A forced save, whatever the policy says.
  template <class State>
  bool save(std::uint64_t step, const State& state, const StepInfo& info = {}) {
    report_background_failure();
    return save_now(step, state, info, false);
  }

  // Blocks until the pending save is committed; throws its failure, if any.
  template <class = void>
  void wait() {
    if (worker_) worker_->wait_idle();
    report_background_failure();
  }

  // Committed checkpoints, oldest first.
  template <class = void>
  std::vector<CheckpointInfo> list() {
    report_background_failure();
    return scan();
  }

  template <class = void>
  std::optional<CheckpointInfo> latest() {
    std::vector<CheckpointInfo> checkpoints = list();
    if (checkpoints.empty()) return std::nullopt;
    return std::move(checkpoints.back());
  }

  // Loads the newest checkpoint that verifies. Corrupt or truncated newer
  // ones are skipped and reported; a state that does not match a valid file
  // is the caller's error and is thrown, not skipped.
  template <class State>
  RestoreResult restore_latest(State& state) {
    wait();
    return restore_newest_valid(scan(), state);
  }

  template <class State>
  RestoreResult restore(std::uint64_t step, State& state) {
    wait();
    for (const CheckpointInfo& info : scan()) {
      if (info.step != step) continue;
      RestoreResult result;
      result.report = load_verified(info, state);
      result.restored = true;
      result.checkpoint = info;
      resume_schedule_at(step);
      return result;
    }
    throw StateError(
        ErrorId::state_not_found, directory_, "",
        detail::join({"expected a checkpoint of step ", step, " named like '", naming_.pattern(), "', found none"}));
  }

  // Restores the newest valid checkpoint, or calls initialize(state) when the
  // directory holds none. Checkpoints that exist but are all corrupt are an
  // error, not a reason to start over.
  template <class State, class Initialize>
  RestoreResult restore_or_initialize(State& state, Initialize&& initialize) {
    wait();
    const std::vector<CheckpointInfo> checkpoints = scan();
    if (checkpoints.empty()) {
      std::forward<Initialize>(initialize)(state);
      resume_schedule_at(std::nullopt);
      return RestoreResult{};
    }
    return restore_newest_valid(checkpoints, state);
  }

  // Pinned checkpoints are never deleted by rotation. Pins live in the index;
  // RetentionPolicy::pinned_steps is the permanent form.
  template <class = void>
  void pin(std::uint64_t step) {
    set_pinned(step, true);
  }
  template <class = void>
  void unpin(std::uint64_t step) {
    set_pinned(step, false);
  }

 private:
  static std::string trimmed(std::string directory) {
    while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
    if (directory.empty()) {
      throw ArgumentError(ErrorId::argument_invalid, "", "", "checkpoint directory: expected a path, found ''");
    }
    return directory;
  }

  bool preemption_pending() const {
    return preemption_ && detail::PreemptionHandler::signals_received() != signals_handled_;
  }

  void require_writable(const char* action) const { detail::require_writable(options_.read_only, directory_, action); }

  template <class = void>
  void report_background_failure() {
    if (!worker_) return;
    if (const std::exception_ptr failure = worker_->take_failure()) std::rethrow_exception(failure);
  }

  template <class = void>
  std::vector<CheckpointInfo> scan() const {
    return detail::scan_checkpoints(directory_, naming_, detail::read_index(directory_));
  }

  struct PendingSave {
    CheckpointInfo checkpoint;
    std::vector<NamedTensor> tensors;
    nlohmann::json metadata;
  };

  template <class State>
  bool save_now(std::uint64_t step, const State& state, const StepInfo& info, bool may_skip) {
    require_writable("save");
    if (options_.async) {
      if (!worker_) worker_ = Worker(new detail::BackgroundWorker<>(), &finish_worker<>);
      if (worker_->busy()) {
        if (may_skip) return false;
        wait();
      }
    }
    const auto started = std::chrono::steady_clock::now();
    const std::uint64_t signals = detail::PreemptionHandler::signals_received();
    CheckpointInfo checkpoint;
    checkpoint.step = step;
    checkpoint.epoch = info.epoch;
    checkpoint.metrics = info.metrics;
    checkpoint.time = clock_();
    checkpoint.path = detail::join({directory_, "/", naming_.file_name({step, info.epoch, info.metrics})});
    CollectedState collected = collect_state(state);
    nlohmann::json metadata = std::move(collected.metadata);
    if (!metadata.is_object()) metadata = nlohmann::json::object();
    metadata[detail::manager_metadata_key] = detail::checkpoint_record(checkpoint);

    if (!options_.async) {
      commit(PendingSave{std::move(checkpoint), std::move(collected.tensors), std::move(metadata)}, started,
             std::nullopt);
      record_save(step, signals, seconds_since(started));
      return true;
    }
    // The staging copy is all the training loop waits for; `collected` may
    // point into the state, which changes as soon as this returns.
    auto pending = std::make_shared<PendingSave>(PendingSave{
        std::move(checkpoint), staging_.stage(collected.tensors, options_.save.threads), std::move(metadata)});
    const double blocked = seconds_since(started);
    record_save(step, signals, blocked);
    worker_->submit([this, pending, started, blocked] {
      try {
        commit(*pending, started, blocked);
      } catch (const Error& error) {
        // The caller learns which save failed and gets the error as a
        // synchronous save would throw it: a full disk stays IoError 103.
        // Anything that is not a ckpt error travels unchanged.
        error.rethrow_with(pending->checkpoint.path, "",
                           detail::join({"background save of step ", pending->checkpoint.step, ": "}));
      }
    });
    return true;
  }

  static double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }

  // Training continues from `step`: the steps after it are due again, even
  // if files of those steps exist (corrupt ones, or an abandoned run's).
  void resume_schedule_at(std::optional<std::uint64_t> step) {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    schedule_.last_saved_step = step;
  }

  template <class = void>
  void record_save(std::uint64_t step, std::uint64_t signals, double blocked) {
    std::lock_guard<std::mutex> lock(schedule_mutex_);
    schedule_.last_saved_step = step;
    schedule_.last_save_end = clock_();
    schedule_.blocked_seconds = blocked;
    signals_handled_ = signals;
  }

  // Writes the file durably, then rotates: nothing is deleted before the new
  // checkpoint is on disk. `async_blocked` is how long an async save blocked
  // the loop (nullopt for a synchronous save, which blocks throughout).
  template <class = void>
  void commit(const PendingSave& save, std::chrono::steady_clock::time_point started,
              std::optional<double> async_blocked) {
    SaveOptions save_options = options_.save;
    if (options_.incremental) {
      save_options.incremental.content_hashes = true;
      save_options.incremental.parent = detail::incremental_parent(scan(), save.checkpoint.step).value_or("");
    }
    const SaveStats stats = write_checkpoint(save.checkpoint.path, save.tensors, save.metadata, save_options);
    CheckpointInfo committed = save.checkpoint;
    committed.bytes = stats.file_bytes;
    SaveEvent event;
    {
      std::lock_guard<std::mutex> lock(catalog_mutex_);
      std::map<std::string, CheckpointInfo> known = detail::read_index(directory_);
      known[detail::file_name_of(committed.path)] = committed;
      std::vector<CheckpointInfo> checkpoints = detail::scan_checkpoints(directory_, naming_, known);
      event.deleted = rotate(checkpoints, committed.step);
      detail::write_index(directory_, checkpoints, options_.save.durable);
    }
    event.step = committed.step;
    event.path = committed.path;
    event.file_bytes = stats.file_bytes;
    event.tensor_bytes = stats.tensor_bytes;
    event.seconds = seconds_since(started);
    event.blocked_seconds = async_blocked.value_or(event.seconds);
    event.compression_ratio =
        stats.file_bytes == 0 ? 1.0 : static_cast<double>(stats.tensor_bytes) / static_cast<double>(stats.file_bytes);
    event.async = async_blocked.has_value();
    if (event.async) {
      std::lock_guard<std::mutex> lock(schedule_mutex_);
      schedule_.background_seconds = event.seconds - event.blocked_seconds;
    }
    if (options_.on_save) options_.on_save(event);
  }

  // Deletes what the retention policy no longer keeps from `checkpoints`
  // (which is updated) and returns the deleted paths.
  template <class = void>
  std::vector<std::string> rotate(std::vector<CheckpointInfo>& checkpoints, std::uint64_t just_committed) {
    // Never a file a kept checkpoint of a chain still needs.
    std::vector<std::uint64_t> doomed = detail::unreachable_checkpoints(
        checkpoints, detail::checkpoints_to_delete(checkpoints, options_.retention, just_committed));
    // Newest first: a file's sources are older, so a kill between two
    // deletions leaves every checkpoint still listed with its whole chain
    // (oldest first, it left doomed children whose parent was gone).
    std::sort(doomed.begin(), doomed.end(), std::greater<>());
    std::vector<std::string> deleted;
    for (std::uint64_t step : doomed) {
      const auto found = std::find_if(checkpoints.begin(), checkpoints.end(),
                                      [&](const CheckpointInfo& info) { return info.step == step; });
      detail::remove_file(found->path);
      deleted.push_back(found->path);
      checkpoints.erase(found);
    }
    return deleted;
  }

  template <class = void>
  void set_pinned(std::uint64_t step, bool pinned) {
    require_writable("pin or unpin");
    report_background_failure();
    std::lock_guard<std::mutex> lock(catalog_mutex_);
    std::vector<CheckpointInfo> checkpoints = scan();
    detail::set_pin(checkpoints, step, pinned, directory_);
    detail::write_index(directory_, checkpoints, options_.save.durable);
  }

  template <class State>
  LoadReport load_verified(const CheckpointInfo& checkpoint, State& state) const {
    const Reader reader(checkpoint.path, ReadOptions{false, options_.save.threads});
    // Verifying first means a corrupt file never half-overwrites the state.
    if (options_.load.verify_checksums) reader.verify();
    LoadOptions load = options_.load;
    load.verify_checksums = false;
    return Checkpoint<State>(options_.save, load).load(reader, state);
  }

  template <class State>
  RestoreResult restore_newest_valid(const std::vector<CheckpointInfo>& candidates, State& state) {
    RestoreResult result;
    for (auto it = candidates.rbegin(); it != candidates.rend(); ++it) {
      try {
        result.report = load_verified(*it, state);
        result.restored = true;
        result.checkpoint = *it;
        resume_schedule_at(it->step);
        return result;
      } catch (const MismatchError&) {
        throw;
      } catch (const Error& error) {
        result.skipped.push_back(SkippedCheckpoint{it->step, it->path, error.what()});
      }
    }
    std::vector<std::string> reasons;
    for (const SkippedCheckpoint& skipped : result.skipped) reasons.push_back(skipped.reason);
    detail::throw_no_valid_checkpoint(directory_,
                                      detail::join({"a valid checkpoint named like '", naming_.pattern(), "'"}),
                                      candidates.size(), reasons);
  }

  // The worker is destroyed through this function, chosen where a save makes
  // the worker, so that programs that never save asynchronously do not
  // compile it. It finishes the pending save; a destructor cannot throw, so
  // a failure nobody collected with wait() is written to stderr rather than
  // lost silently.
  using Worker = std::unique_ptr<detail::BackgroundWorker<>, void (*)(detail::BackgroundWorker<>*)>;
  template <class = void>
  static void finish_worker(detail::BackgroundWorker<>* worker) {
    worker->wait_idle();
    detail::write_uncollected_failure(worker->take_failure());
    delete worker;
  }

  std::string directory_;
  ManagerOptions options_;
  detail::CheckpointNaming<> naming_;
  Clock clock_;
  std::optional<detail::DirectoryLock> lock_;
  std::optional<detail::PreemptionHandler> preemption_;
  std::uint64_t signals_at_start_ = 0;
  std::atomic<std::uint64_t> signals_handled_{0};  // preemption signals a save already answered
  mutable std::mutex schedule_mutex_;
  detail::ScheduleState schedule_;
  std::mutex catalog_mutex_;
  detail::StagingBuffer staging_;
  // Last member: destroyed first, so a pending job never outlives what it uses.
  Worker worker_{nullptr, nullptr};
};

}  // namespace ckpt

#pragma once

// A job of N ranks inside one process, one thread per rank, for tests of the
// distributed protocol that need no MPI (and run under the sanitizers).
// run_ranks(N, f) calls f(communicator) on N threads and returns what each
// rank threw.

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "ckpt/distributed/communicator.hpp"

namespace ckpt::test {

// Where the ranks of one communicator meet: every collective is an exchange
// of every rank's bytes, completed when the last rank arrives.
class RankHub {
 public:
  explicit RankHub(int size) : size_(size), slots_(static_cast<std::size_t>(size)) {}

  int size() const noexcept { return size_; }

  std::vector<std::string> exchange(int rank, std::string bytes) {
    std::unique_lock<std::mutex> lock(mutex_);
    slots_[static_cast<std::size_t>(rank)] = std::move(bytes);
    const std::uint64_t round = round_;
    if (++arrived_ == size_) {
      // The result of a round stays until the next round completes, which
      // needs every rank of this one to have read it and come back.
      result_ = std::make_shared<const std::vector<std::string>>(std::move(slots_));
      slots_.assign(static_cast<std::size_t>(size_), {});
      arrived_ = 0;
      ++round_;
      changed_.notify_all();
    } else {
      changed_.wait(lock, [&] { return round_ != round; });
    }
    return *result_;
  }

  // The hub of the `index`th duplicate: every rank asking for the same index
  // meets in the same new hub.
  std::shared_ptr<RankHub> duplicate(std::uint64_t index) {
    std::lock_guard<std::mutex> lock(mutex_);
    std::shared_ptr<RankHub>& hub = duplicates_[index];
    if (!hub) hub = std::make_shared<RankHub>(size_);
    return hub;
  }

 private:
  const int size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> slots_;
  int arrived_ = 0;
  std::uint64_t round_ = 0;
  std::shared_ptr<const std::vector<std::string>> result_;
  std::map<std::uint64_t, std::shared_ptr<RankHub>> duplicates_;
};

class ThreadCommunicator final : public Communicator {
 public:
  ThreadCommunicator(std::shared_ptr<RankHub> hub, int rank, bool background = true)
      : hub_(std::move(hub)), rank_(rank), background_(background) {}

  int rank() const override { return rank_; }
  int size() const override { return hub_->size(); }
  std::vector<std::string> all_gather(std::string_view bytes) override {
    return hub_->exchange(rank_, std::string(bytes));
  }
  std::vector<std::string> gather(std::string_view bytes, int root) override {
    std::vector<std::string> all = hub_->exchange(rank_, std::string(bytes));
    return rank_ == root ? all : std::vector<std::string>();
  }
  std::string broadcast(std::string_view bytes, int root) override {
    return hub_->exchange(rank_, std::string(bytes))[static_cast<std::size_t>(root)];
  }
  bool allows_background_collectives() const override { return background_; }
  std::unique_ptr<Communicator> duplicate() override {
    return std::make_unique<ThreadCommunicator>(hub_->duplicate(duplicates_++), rank_, background_);
  }

 private:
  std::shared_ptr<RankHub> hub_;
  int rank_;
  bool background_;
  std::uint64_t duplicates_ = 0;
};

// Runs `job(communicator)` as ranks 0 .. size - 1 of one job, each on its own
// thread; returns what each rank threw (null where it returned).
// `background`: whether the communicators allow background collectives.
template <class Job>
std::vector<std::exception_ptr> run_ranks(int size, Job&& job, bool background = true) {
  auto hub = std::make_shared<RankHub>(size);
  std::vector<std::exception_ptr> failures(static_cast<std::size_t>(size));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&, rank] {
      ThreadCommunicator communicator(hub, rank, background);
      try {
        job(static_cast<Communicator&>(communicator));
      } catch (...) {
        failures[static_cast<std::size_t>(rank)] = std::current_exception();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  return failures;
}

}  // namespace ckpt::test

#pragma once

// One background thread running one job at a time: the asynchronous part of
// a save. A job's exception is kept until someone takes it, so a failure in
// the background is reported by the next call in the foreground.

#include <condition_variable>
#include <cstdio>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

namespace ckpt::detail {

// For destructors, which cannot throw: a failure nobody collected is written
// to stderr rather than lost silently.
inline void write_uncollected_failure(const std::exception_ptr& failure) noexcept {
  if (!failure) return;
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ckpt: a background save failed and was never reported: %s\n", error.what());
  } catch (...) {
    std::fprintf(stderr, "ckpt: a background save failed and was never reported\n");
  }
}

// A template only so that programs without a CheckpointManager do not compile
// it (see "Compile time" in docs/architecture.md).
template <class = void>
class BackgroundWorker {
 public:
  BackgroundWorker() = default;
  BackgroundWorker(const BackgroundWorker&) = delete;
  BackgroundWorker& operator=(const BackgroundWorker&) = delete;

  // Finishes the pending job first.
  ~BackgroundWorker() {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      idle_.wait(lock, [&] { return !job_; });
      stopping_ = true;
    }
    work_.notify_one();
    if (thread_.joinable()) thread_.join();
  }

  // Waits for the previous job to finish, then hands `job` to the thread.
  void submit(std::function<void()> job) {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return !job_; });
    job_ = std::move(job);
    if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
    lock.unlock();
    work_.notify_one();
  }

  bool busy() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return static_cast<bool>(job_);
  }

  void wait_idle() {
    std::unique_lock<std::mutex> lock(mutex_);
    idle_.wait(lock, [&] { return !job_; });
  }

  // The exception of a failed job, once; null when none failed since the last call.
  std::exception_ptr take_failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return std::exchange(failure_, nullptr);
  }

 private:
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      work_.wait(lock, [&] { return stopping_ || job_; });
      if (!job_) return;
      lock.unlock();
      std::exception_ptr failure;
      try {
        job_();
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      if (failure) failure_ = failure;
      job_ = nullptr;
      idle_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::function<void()> job_;
  std::exception_ptr failure_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace ckpt::detail

#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ckpt::detail {

// A process-wide pool of worker threads kept for the life of the program.
// Checkpoints hold many small tensors; starting threads for each of them would
// cost more than encoding a small chunk (measured: about 28 us per call with
// the pool against 77 us with a thread per call, for two 64 KiB jobs).
//
// The calling thread always takes part in its own job, so a job finishes even
// when every worker is busy, which makes nested parallel_for calls safe.
//
// The pool and parallel_for are templates only so that programs that never
// run a job do not compile them (see "Compile time" in docs/architecture.md).
template <class = void>
class ThreadPool {
 public:
  static ThreadPool& shared() {
    static ThreadPool pool;
    return pool;
  }

  ThreadPool() = default;
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_workers_.notify_all();
    for (std::thread& worker : workers_) worker.join();
  }

  // Runs fn(i) for every i in [0, count) on the caller plus up to `helpers`
  // workers; returns when all calls returned. After a call throws, the
  // remaining indices are skipped and the first exception is rethrown.
  void run(std::size_t count, unsigned helpers, const std::function<void(std::size_t)>& fn) {
    auto job = std::make_shared<Job>(fn, count);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_.size() < helpers) workers_.emplace_back([this] { work(); });
      for (unsigned i = 0; i < helpers; ++i) tickets_.push_back(job);
    }
    wake_workers_.notify_all();
    job->take_part();
    // Taken out of the job so the exception is released on this thread, not
    // by whichever worker drops the job last.
    std::exception_ptr error = job->wait();
    if (error) std::rethrow_exception(error);
  }

 private:
  // Shared by the caller and the workers that join it; a worker may still hold
  // a finished job after run() returned, but then it touches only the counters.
  struct Job {
    Job(const std::function<void(std::size_t)>& fn, std::size_t count) : fn(fn), count(count) {}

    void take_part() {
      for (std::size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) {
        if (!failed.load(std::memory_order_acquire)) {
          try {
            fn(i);
          } catch (...) {
            std::lock_guard<std::mutex> lock(mutex);
            if (!error) error = std::current_exception();
            failed.store(true, std::memory_order_release);
          }
        }
        std::lock_guard<std::mutex> lock(mutex);
        if (++finished == count) all_finished.notify_all();
      }
    }

    // Waits for every index to finish; returns the first exception, if any.
    std::exception_ptr wait() {
      std::unique_lock<std::mutex> lock(mutex);
      all_finished.wait(lock, [this] { return finished == count; });
      return std::move(error);
    }

    const std::function<void(std::size_t)>& fn;
    const std::size_t count;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::condition_variable all_finished;
    std::size_t finished = 0;      // guarded by mutex
    std::exception_ptr error;      // guarded by mutex
  };

  void work() {
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_workers_.wait(lock, [this] { return stopping_ || !tickets_.empty(); });
        if (tickets_.empty()) return;  // stopping
        job = std::move(tickets_.front());
        tickets_.erase(tickets_.begin());
      }
      job->take_part();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_workers_;
  // One per worker a job may use (fewer than the cores), oldest first. A
  // vector: erasing from its front costs nothing next to a job, and spares
  // every program that includes ckpt the <deque> header.
  std::vector<std::shared_ptr<Job>> tickets_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
};

// Runs fn(i) for i in [0, count) on up to `threads` threads (0 = hardware
// concurrency; never more threads than cores or indices, as the work is
// CPU-bound); rethrows the first exception thrown by fn.
template <class = void>
void parallel_for(std::size_t count, unsigned threads, const std::function<void(std::size_t)>& fn) {
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  const std::size_t wanted = std::min<std::size_t>({threads == 0 ? cores : threads, cores, count});
  if (wanted <= 1) {
    for (std::size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  ThreadPool<>::shared().run(count, static_cast<unsigned>(wanted - 1), fn);
}

}  // namespace ckpt::detail

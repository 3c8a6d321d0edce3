#pragma once

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
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
  // The pool of this process. A child made by fork() inherits its parent's
  // pool without the threads, and with a mutex and condition variable in
  // whatever state the parent's waiting workers left them (glibc's broadcast
  // then waits forever for waiters that do not exist); so each process makes
  // its own pool on first use and leaves an inherited one untouched. Pools
  // are never destroyed: their idle workers end with the process.
  static ThreadPool& shared() {
    static std::atomic<ThreadPool*> current{nullptr};
    const pid_t self = ::getpid();
    ThreadPool* pool = current.load(std::memory_order_acquire);
    while (pool == nullptr || pool->owner_ != self) {
      auto* fresh = new ThreadPool(self);
      fresh->inherited_ = pool;
      if (current.compare_exchange_strong(pool, fresh, std::memory_order_acq_rel)) return *fresh;
      delete fresh;  // another thread of this process installed one first: `pool` now holds it
    }
    return *pool;
  }

  explicit ThreadPool(pid_t owner) : owner_(owner) {}
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
  //
  // When run() returns, no worker touches the job any more and none is left
  // holding memory of it: a worker frees nothing after the caller moved on.
  // Nor is a worker this call started still starting: a new thread allocates
  // before it reaches work() (glibc's pthread_getattr_np, a sanitizer's
  // thread set-up), and a job small enough for the caller alone ends before
  // that. That keeps fork() in the caller safe (the test suite forks crash
  // children right after parallel loads): a child never inherits a lock, the
  // allocator's included, that a worker held at the instant of the fork.
  void run(std::size_t count, unsigned helpers, const std::function<void(std::size_t)>& fn) {
    Job job(fn, count);
    std::size_t workers_made = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      while (workers_.size() < helpers) workers_.emplace_back([this] { work(); });
      workers_made = workers_.size();
      tickets_.insert(tickets_.end(), helpers, &job);
    }
    wake_workers_.notify_all();
    job.take_part();
    {
      // Tickets no worker took are withdrawn: the job is done without them.
      std::unique_lock<std::mutex> lock(mutex_);
      tickets_.erase(std::remove(tickets_.begin(), tickets_.end(), &job), tickets_.end());
      worker_started_.wait(lock, [&] { return started_ >= workers_made; });
    }
    if (std::exception_ptr error = job.wait()) std::rethrow_exception(error);
  }

  // Workers that have reached the pool, out of all it made: run() returns
  // only once every worker it made is counted here.
  std::size_t started_workers() {
    std::lock_guard<std::mutex> lock(mutex_);
    return started_;
  }

 private:
  // Lives on the caller's stack; workers join it through a ticket and leave
  // it before run() returns (wait() waits for both the indices and them).
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
        ++finished;
        if (finished == count && joined == 0) done.notify_all();
      }
    }

    // A worker's last touch of the job: after this unlock the caller may
    // destroy it.
    void leave() {
      std::lock_guard<std::mutex> lock(mutex);
      --joined;
      if (finished == count && joined == 0) done.notify_all();
    }

    // Waits for every index to finish and every worker to leave; returns the
    // first exception, if any, released on the caller's thread.
    std::exception_ptr wait() {
      std::unique_lock<std::mutex> lock(mutex);
      done.wait(lock, [this] { return finished == count && joined == 0; });
      return std::move(error);
    }

    const std::function<void(std::size_t)>& fn;
    const std::size_t count;
    std::atomic<std::size_t> next{0};
    std::atomic<bool> failed{false};
    std::mutex mutex;
    std::condition_variable done;
    std::size_t finished = 0;  // guarded by mutex
    std::size_t joined = 0;    // workers inside take_part; guarded by mutex
    std::exception_ptr error;  // guarded by mutex
  };

  void work() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++started_;
      worker_started_.notify_all();
    }
    for (;;) {
      Job* job = nullptr;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_workers_.wait(lock, [this] { return stopping_ || !tickets_.empty(); });
        if (tickets_.empty()) return;  // stopping
        job = tickets_.front();
        tickets_.erase(tickets_.begin());
        // Joined under the pool's lock, so the caller, which withdraws the
        // remaining tickets under it too, waits for exactly these workers.
        std::lock_guard<std::mutex> joining(job->mutex);
        ++job->joined;
      }
      job->take_part();
      job->leave();
    }
  }

  std::mutex mutex_;
  std::condition_variable wake_workers_;
  std::condition_variable worker_started_;
  std::size_t started_ = 0;  // workers that reached work(); guarded by mutex_
  // One per worker a job may use (fewer than the cores), oldest first. A
  // vector: erasing from its front costs nothing next to a job, and spares
  // every program that includes ckpt the <deque> header.
  std::vector<Job*> tickets_;
  std::vector<std::thread> workers_;
  bool stopping_ = false;
  const pid_t owner_;  // the process whose threads these are
  // The parent's pool this process inherited, if any: kept reachable so that
  // leak checkers do not report it, never used.
  ThreadPool* inherited_ = nullptr;
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

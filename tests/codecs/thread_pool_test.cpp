#include "ckpt/detail/os/thread_pool.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ckpt/error.hpp"

namespace {

using ckpt::detail::parallel_for;

TEST(ParallelFor, RunsEveryIndexExactlyOnce) {
  for (unsigned threads : {0u, 1u, 2u, 3u, 16u}) {
    for (std::size_t count : {0, 1, 2, 3, 17, 1000}) {
      std::vector<std::atomic<int>> runs(count);
      parallel_for(count, threads, [&](std::size_t i) { runs[i].fetch_add(1); });
      for (std::size_t i = 0; i < count; ++i) {
        ASSERT_EQ(runs[i].load(), 1) << "index " << i << " of " << count << ", threads " << threads;
      }
    }
  }
}

TEST(ParallelFor, RunsOnTwoThreadsAtOnce) {
  if (std::thread::hardware_concurrency() < 2) GTEST_SKIP() << "one core";
  // Each call waits until both calls have started: only true concurrency lets
  // them finish. The timeout turns a regression into a failure, not a hang.
  std::mutex mutex;
  std::condition_variable both_started;
  int started = 0;
  bool all_met = true;
  parallel_for(2, 2, [&](std::size_t) {
    std::unique_lock<std::mutex> lock(mutex);
    ++started;
    both_started.notify_all();
    if (!both_started.wait_for(lock, std::chrono::seconds(30), [&] { return started == 2; })) all_met = false;
  });
  EXPECT_TRUE(all_met);
}

// A job the caller finishes alone returns before a freshly made worker has
// even started; if run() returned then, a fork() right after it could copy
// a lock that the starting thread held (its start-up allocates), and the
// child would deadlock at its first allocation.
TEST(ThreadPool, RunReturnsOnlyOnceTheWorkersItMadeHaveStarted) {
  for (unsigned helpers : {1u, 3u}) {
    ckpt::detail::ThreadPool<> pool(::getpid());
    pool.run(1, helpers, [](std::size_t) {});
    EXPECT_EQ(pool.started_workers(), helpers);
  }
}

TEST(ParallelFor, RethrowsTheExceptionOfAFailingCall) {
  for (unsigned threads : {1u, 2u}) {
    std::atomic<int> completed{0};
    try {
      parallel_for(100, threads, [&](std::size_t i) {
        if (i == 7) throw std::out_of_range("index 7 failed");
        completed.fetch_add(1);
      });
      ADD_FAILURE() << "no exception";
    } catch (const std::out_of_range& error) {
      EXPECT_STREQ(error.what(), "index 7 failed");
    }
    // Calls after a failure are skipped; one thread runs them in order.
    if (threads == 1) {
      EXPECT_EQ(completed.load(), 7);
    }
  }
  // The pool survives a failed job.
  std::atomic<int> runs{0};
  parallel_for(10, 2, [&](std::size_t) { runs.fetch_add(1); });
  EXPECT_EQ(runs.load(), 10);
}

TEST(ParallelFor, KeepsTheClassAndIdOfCkptErrors) {
  try {
    parallel_for(4, 2, [](std::size_t) {
      throw ckpt::CodecError(ckpt::ErrorId::codec_decode, "f.safetensors", "w", "bad chunk");
    });
    ADD_FAILURE() << "no exception";
  } catch (const ckpt::CodecError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::codec_decode);
    EXPECT_EQ(error.tensor(), "w");
  }
}

TEST(ParallelFor, NestedCallsFinish) {
  // Inner jobs run while every worker may be busy with the outer job; the
  // caller's own participation guarantees progress.
  std::atomic<int> total{0};
  parallel_for(8, 2, [&](std::size_t) { parallel_for(8, 2, [&](std::size_t) { total.fetch_add(1); }); });
  EXPECT_EQ(total.load(), 64);
}

TEST(ParallelFor, ConcurrentCallersShareThePool) {
  std::atomic<long> total{0};
  auto caller = [&] {
    for (int round = 0; round < 200; ++round) {
      parallel_for(5, 2, [&](std::size_t i) { total.fetch_add(static_cast<long>(i)); });
    }
  };
  std::thread first(caller), second(caller);
  caller();
  first.join();
  second.join();
  EXPECT_EQ(total.load(), 3 * 200 * (0 + 1 + 2 + 3 + 4));
}

}  // namespace

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>

#include "ckpt/detail/manager/background_worker.hpp"
#include "ckpt/detail/manager/staging_buffer.hpp"

namespace {

using ckpt::detail::BackgroundWorker;

// A gate the test opens, so a job can be held "in flight" without sleeping.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  void pass() {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = false;
};

TEST(BackgroundWorker, RunsJobsInOrderOneAtATime) {
  BackgroundWorker worker;
  std::vector<int> order;  // touched only by the worker, read after wait_idle
  Gate gate;
  worker.submit([&] {
    gate.pass();
    order.push_back(1);
  });
  EXPECT_TRUE(worker.busy());
  gate.open();
  worker.submit([&] { order.push_back(2); });  // waits for the first
  worker.wait_idle();
  EXPECT_FALSE(worker.busy());
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

TEST(BackgroundWorker, FailureIsKeptUntilTakenOnce) {
  BackgroundWorker worker;
  worker.submit([] { throw std::runtime_error("disk on fire"); });
  worker.wait_idle();
  const std::exception_ptr failure = worker.take_failure();
  ASSERT_TRUE(failure);
  try {
    std::rethrow_exception(failure);
  } catch (const std::runtime_error& error) {
    EXPECT_STREQ(error.what(), "disk on fire");
  }
  EXPECT_FALSE(worker.take_failure());
}

TEST(BackgroundWorker, DestructorFinishesThePendingJob) {
  std::atomic<bool> done{false};
  Gate gate;
  {
    BackgroundWorker worker;
    worker.submit([&] {
      gate.pass();
      done = true;
    });
    gate.open();
  }
  EXPECT_TRUE(done.load());
}

TEST(StagingBuffer, CopiesAreIndependentOfTheSourceAndTheBufferIsReused) {
  std::vector<float> weights{1, 2, 3};
  std::vector<std::int64_t> counters{7};
  ckpt::detail::StagingBuffer staging;
  const auto staged =
      staging.stage({{"w", ckpt::TensorView(weights.data(), {3})}, {"c", ckpt::TensorView(counters.data(), {1})}});
  weights[0] = 100;
  ASSERT_EQ(staged.size(), 2u);
  EXPECT_EQ(staged[0].name, "w");
  EXPECT_EQ(reinterpret_cast<const float*>(staged[0].view.data())[0], 1.0f);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(staged[1].view.data()) % alignof(std::int64_t), 0u);
  EXPECT_EQ(reinterpret_cast<const std::int64_t*>(staged[1].view.data())[0], 7);
  const std::size_t capacity = staging.capacity();
  const auto again = staging.stage({{"w", ckpt::TensorView(weights.data(), {3})}});
  EXPECT_EQ(staging.capacity(), capacity);
  EXPECT_EQ(again[0].view.data(), staged[0].view.data());
  EXPECT_EQ(reinterpret_cast<const float*>(again[0].view.data())[0], 100.0f);
}

}  // namespace

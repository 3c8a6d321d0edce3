#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>

#include "ckpt/detail/manager/preemption.hpp"

namespace {

using ckpt::detail::PreemptionHandler;

std::atomic<int> previous_handler_calls{0};
void previous_handler(int) { previous_handler_calls.fetch_add(1); }

void (*current_handler(int signal_number))(int) {
  struct sigaction action {};
  ::sigaction(signal_number, nullptr, &action);
  return action.sa_handler;
}

// Installs previous_handler for the test and restores the default after it.
class PreemptionHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    previous_handler_calls = 0;
    ::signal(SIGUSR1, previous_handler);
    ::signal(SIGTERM, previous_handler);
  }
  void TearDown() override {
    ::signal(SIGUSR1, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
  }
};

TEST_F(PreemptionHandlerTest, SignalIsCountedAndThePreviousHandlerChained) {
  const std::uint64_t before = PreemptionHandler::signals_received();
  {
    PreemptionHandler handler({SIGTERM, SIGUSR1});
    ASSERT_EQ(::raise(SIGTERM), 0);
    ASSERT_EQ(::raise(SIGUSR1), 0);
    EXPECT_EQ(PreemptionHandler::signals_received(), before + 2);
    EXPECT_EQ(previous_handler_calls.load(), 2);
  }
  EXPECT_EQ(current_handler(SIGTERM), &previous_handler);
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
}

// SavePolicy::preemption_signals is empty unless a user names signals.
TEST_F(PreemptionHandlerTest, AnEmptyListCatchesSigtermAndSigusr1) {
  const std::uint64_t before = PreemptionHandler::signals_received();
  {
    PreemptionHandler handler({});
    ASSERT_EQ(::raise(SIGTERM), 0);
    ASSERT_EQ(::raise(SIGUSR1), 0);
    EXPECT_EQ(PreemptionHandler::signals_received(), before + 2);
  }
  EXPECT_EQ(current_handler(SIGTERM), &previous_handler);
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
}

TEST_F(PreemptionHandlerTest, NestedInstallationsRestoreOnlyWhenTheLastGoes) {
  auto outer = std::make_unique<PreemptionHandler>(std::vector<int>{SIGUSR1});
  auto inner = std::make_unique<PreemptionHandler>(std::vector<int>{SIGUSR1});
  outer.reset();
  EXPECT_NE(current_handler(SIGUSR1), &previous_handler);
  const std::uint64_t before = PreemptionHandler::signals_received();
  ASSERT_EQ(::raise(SIGUSR1), 0);
  EXPECT_EQ(PreemptionHandler::signals_received(), before + 1);
  inner.reset();
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
}

TEST_F(PreemptionHandlerTest, UncatchableSignalIsAnArgumentErrorAndInstallsNothing) {
  try {
    PreemptionHandler handler({SIGUSR1, SIGKILL});
    FAIL() << "SIGKILL accepted";
  } catch (const ckpt::ArgumentError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::argument_invalid);
    EXPECT_NE(std::string(error.what()).find(std::to_string(SIGKILL)), std::string::npos);
  }
  EXPECT_EQ(current_handler(SIGUSR1), &previous_handler);
}

}  // namespace

#pragma once

// Preemption notices (SIGTERM from a scheduler, SIGUSR1 from a job script)
// counted by a handler that does nothing but an atomic increment, which is
// async-signal-safe; the manager saves at the next step boundary. Handlers
// are process-wide, so installations are reference-counted per signal: the
// first installs and remembers the previous handler, the last restores it.

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

static_assert(std::atomic<std::uint64_t>::is_always_lock_free, "the signal handler needs a lock-free counter");

struct PreemptionRegistry {
  std::atomic<std::uint64_t> signals_received{0};
  std::mutex install_mutex;
  // Written only while the signal's own handler is not installed; read by it.
  struct sigaction previous[NSIG] = {};
  int installations[NSIG] = {};

  static PreemptionRegistry& instance() {
    static PreemptionRegistry registry;
    return registry;
  }
};

inline void preemption_signal_handler(int signal_number, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  PreemptionRegistry& registry = PreemptionRegistry::instance();
  registry.signals_received.fetch_add(1, std::memory_order_relaxed);
  // Chain: a previous function handler still runs. SIG_DFL is not chained,
  // since for SIGTERM it would end the process before the save.
  const struct sigaction& previous = registry.previous[signal_number];
  if ((previous.sa_flags & SA_SIGINFO) != 0) {
    if (previous.sa_sigaction != nullptr) previous.sa_sigaction(signal_number, info, context);
  } else if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
    previous.sa_handler(signal_number);
  }
  errno = saved_errno;
}

// What a scheduler (SIGTERM) or a job script (SIGUSR1) sends before it stops a job.
template <class = void>
std::vector<int> default_preemption_signals() {
  return {SIGTERM, SIGUSR1};
}

class PreemptionHandler {
 public:
  // Catches `signals`; an empty list means default_preemption_signals(). A
  // template only so that programs that install no handler do not compile it
  // (see "Compile time" in docs/architecture.md).
  template <class = void>
  explicit PreemptionHandler(std::vector<int> signals)
      : signals_(signals.empty() ? default_preemption_signals() : std::move(signals)) {
    PreemptionRegistry& registry = PreemptionRegistry::instance();
    std::lock_guard<std::mutex> lock(registry.install_mutex);
    for (std::size_t i = 0; i < signals_.size(); ++i) {
      const int signal_number = signals_[i];
      if (signal_number <= 0 || signal_number >= NSIG || signal_number == SIGKILL || signal_number == SIGSTOP) {
        signals_.resize(i);
        uninstall_locked(registry);
        throw ArgumentError(ErrorId::argument_invalid, "", "",
                            join({"preemption signal ", signal_number, ": expected a catchable signal"}));
      }
      if (registry.installations[signal_number]++ > 0) continue;
      struct sigaction action {};
      action.sa_sigaction = preemption_signal_handler;
      action.sa_flags = SA_SIGINFO | SA_RESTART;
      sigemptyset(&action.sa_mask);
      ::sigaction(signal_number, &action, &registry.previous[signal_number]);
    }
  }

  PreemptionHandler(const PreemptionHandler&) = delete;
  PreemptionHandler& operator=(const PreemptionHandler&) = delete;

  ~PreemptionHandler() {
    PreemptionRegistry& registry = PreemptionRegistry::instance();
    std::lock_guard<std::mutex> lock(registry.install_mutex);
    uninstall_locked(registry);
  }

  static std::uint64_t signals_received() noexcept {
    return PreemptionRegistry::instance().signals_received.load(std::memory_order_relaxed);
  }

 private:
  void uninstall_locked(PreemptionRegistry& registry) {
    for (int signal_number : signals_) {
      if (--registry.installations[signal_number] == 0) {
        ::sigaction(signal_number, &registry.previous[signal_number], nullptr);
      }
    }
  }

  std::vector<int> signals_;
};

}  // namespace ckpt::detail

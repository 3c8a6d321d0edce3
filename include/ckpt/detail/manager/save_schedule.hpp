#pragma once

// Decides whether a save falls due: a pure function of the policy, what the
// manager remembers about its previous save, the step and the time.

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

#include "ckpt/manager_policies.hpp"

namespace ckpt::detail {

struct ScheduleState {
  std::optional<std::uint64_t> last_saved_step;
  double last_save_end = 0;               // clock when the previous save stopped blocking (or the manager started)
  std::optional<double> blocked_seconds;  // how long the previous save blocked the training loop
  double background_seconds = 0;          // how long its background part took (async saves)
  bool preemption_pending = false;
};

// Training seconds that must pass after a save that blocked for `blocked`
// seconds so that blocked / (blocked + training) stays at most `fraction`.
inline double adaptive_interval_seconds(double blocked, double background, double fraction) {
  const double training = blocked * (1.0 - fraction) / fraction;
  // An async save is not over before its background part is: waiting for it
  // would block the loop again.
  return std::max(training, background);
}

// The options no rule can follow are refused when the manager is made.
inline void check_save_policy(const SavePolicy& policy, const std::string& directory) {
  const double overhead = policy.max_overhead;
  if (!(overhead >= 0 && overhead < 1)) {
    throw ArgumentError(
        ErrorId::argument_invalid, directory, "",
        join({"save_policy.max_overhead: expected a fraction in [0, 1), found ", std::to_string(overhead)}));
  }
}

template <class = void>
bool save_due(const SavePolicy& policy, const ScheduleState& state, std::uint64_t step, double now) {
  if (state.last_saved_step == step) return false;
  if (policy.on_preemption && state.preemption_pending) return true;
  if (policy.every_steps != 0 && step % policy.every_steps == 0) return true;
  if (std::find(policy.at_steps.begin(), policy.at_steps.end(), step) != policy.at_steps.end()) return true;
  const double elapsed = now - state.last_save_end;
  if (policy.every_seconds > 0 && elapsed >= policy.every_seconds) return true;
  if (policy.max_overhead > 0) {
    if (!state.blocked_seconds) return true;
    return elapsed >= adaptive_interval_seconds(*state.blocked_seconds, state.background_seconds, policy.max_overhead);
  }
  return false;
}

}  // namespace ckpt::detail

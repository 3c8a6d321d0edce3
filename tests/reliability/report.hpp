#pragma once

// Counts of the cases a run tried (faults injected, mutants, hostile files),
// printed as "[reliability] <what>: <count>" lines: by each test for its own
// cases, and once more as totals when the whole executable runs.

#include <cstdint>
#include <iostream>
#include <map>
#include <mutex>
#include <string>

namespace ckpt::test {

inline std::map<std::string, std::uint64_t>& totals() {
  static std::map<std::string, std::uint64_t> totals;
  return totals;
}

inline void report_count(const std::string& what, std::uint64_t count) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::cout << "[reliability] " << what << ": " << count << std::endl;
  // Totals group by the part before the first '(' ("save faults (raw)" -> "save faults").
  totals()[what.substr(0, what.find(" ("))] += count;
}

}  // namespace ckpt::test

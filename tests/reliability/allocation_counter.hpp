#pragma once

// Measures what the program allocates through operator new while a scope is
// open: the largest single allocation and the peak of live bytes. The
// replacement operators live in allocation_counter.cpp.

#include <cstdint>

namespace ckpt::test {

struct AllocationStats {
  std::uint64_t largest_bytes = 0;    // largest single allocation
  std::uint64_t peak_live_bytes = 0;  // most bytes live at once, beyond those live when the scope opened
};

class AllocationScope {
 public:
  AllocationScope();
  AllocationScope(const AllocationScope&) = delete;
  AllocationScope& operator=(const AllocationScope&) = delete;

  AllocationStats stats() const;
};

}  // namespace ckpt::test

// Replaces the global operator new and delete to count bytes (through
// malloc_usable_size, so a delete without a size is counted exactly).

#include "allocation_counter.hpp"

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

namespace {

std::atomic<std::int64_t> live_bytes{0};
std::atomic<std::int64_t> baseline{0};
std::atomic<std::int64_t> peak{0};
std::atomic<std::uint64_t> largest{0};

void* counted_allocation(std::size_t size) noexcept {
  // Counted before malloc, so a request too large to succeed is seen too.
  for (std::uint64_t seen = largest.load(); size > seen && !largest.compare_exchange_weak(seen, size);) {
  }
  void* pointer = std::malloc(size == 0 ? 1 : size);
  if (pointer == nullptr) return nullptr;
  const auto usable = static_cast<std::int64_t>(malloc_usable_size(pointer));
  const std::int64_t now = live_bytes.fetch_add(usable) + usable;
  for (std::int64_t seen = peak.load(); now > seen && !peak.compare_exchange_weak(seen, now);) {
  }
  return pointer;
}

void counted_release(void* pointer) noexcept {
  if (pointer == nullptr) return;
  live_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(pointer)));
  std::free(pointer);
}

void* throwing_allocation(std::size_t size) {
  void* pointer = counted_allocation(size);
  if (pointer == nullptr) throw std::bad_alloc();
  return pointer;
}

}  // namespace

void* operator new(std::size_t size) { return throwing_allocation(size); }
void* operator new[](std::size_t size) { return throwing_allocation(size); }
void* operator new(std::size_t size, const std::nothrow_t&) noexcept { return counted_allocation(size); }
void* operator new[](std::size_t size, const std::nothrow_t&) noexcept { return counted_allocation(size); }
void operator delete(void* pointer) noexcept { counted_release(pointer); }
void operator delete[](void* pointer) noexcept { counted_release(pointer); }
void operator delete(void* pointer, std::size_t) noexcept { counted_release(pointer); }
void operator delete[](void* pointer, std::size_t) noexcept { counted_release(pointer); }
void operator delete(void* pointer, const std::nothrow_t&) noexcept { counted_release(pointer); }
void operator delete[](void* pointer, const std::nothrow_t&) noexcept { counted_release(pointer); }

// Under AddressSanitizer a request too large to succeed must fail like it does
// without it (bad_alloc the test reports) rather than abort the whole run.
extern "C" const char* __asan_default_options() { return "allocator_may_return_null=1"; }

namespace ckpt::test {

AllocationScope::AllocationScope() {
  baseline = live_bytes.load();
  peak = baseline.load();
  largest = 0;
}

AllocationStats AllocationScope::stats() const {
  return {largest.load(), static_cast<std::uint64_t>(std::max<std::int64_t>(0, peak.load() - baseline.load()))};
}

}  // namespace ckpt::test

#pragma once

// Sorting through one instantiation of std::stable_sort. Each comparator
// type handed to std::sort or std::stable_sort makes g++ compile the
// algorithm's introsort, heap or merge helpers once more (1,000 to 2,000
// instructions at -O2, a tenth of a save-and-load program's code). The sorts
// here order positions with the comparator behind a pointer, so a program
// compiles the algorithm once for all of them. Sorts tuned on a measured
// fast path (a save's names, a reader's name index) keep their own.
// Standard library only.

#include <algorithm>
#include <cstddef>
#include <numeric>
#include <utility>
#include <vector>

namespace ckpt::detail {

// A strict weak order on the positions of a sequence the caller holds:
// `less`, called through a pointer.
class PositionLess {
 public:
  template <class Less>
  explicit PositionLess(const Less& less) noexcept
      : less_(&less),
        call_([](const void* less, std::size_t a, std::size_t b) { return (*static_cast<const Less*>(less))(a, b); }) {}

  bool operator()(std::size_t a, std::size_t b) const { return call_(less_, a, b); }

 private:
  const void* less_;
  bool (*call_)(const void*, std::size_t, std::size_t);
};

// Sorts `positions` by `less`, stably: equal ones keep their order. (A
// template only so that programs that never sort do not compile it.)
template <class Void = void>
void stable_sort_positions(std::vector<std::size_t>& positions, PositionLess less) {
  std::stable_sort(positions.begin(), positions.end(), less);
}

// The positions 0 .. count - 1 ordered by `less(a, b)`, stably.
template <class Less>
std::vector<std::size_t> stable_order(std::size_t count, const Less& less) {
  std::vector<std::size_t> positions(count);
  std::iota(positions.begin(), positions.end(), std::size_t(0));
  stable_sort_positions(positions, PositionLess(less));
  return positions;
}

// Sorts `items` by `less(item, item)`, stably, moving each item once.
template <class T, class Less>
void stable_sort_items(std::vector<T>& items, const Less& less) {
  const std::vector<std::size_t> order =
      stable_order(items.size(), [&](std::size_t a, std::size_t b) { return less(items[a], items[b]); });
  std::vector<T> sorted;
  sorted.reserve(items.size());
  for (std::size_t position : order) sorted.push_back(std::move(items[position]));
  items = std::move(sorted);
}

}  // namespace ckpt::detail

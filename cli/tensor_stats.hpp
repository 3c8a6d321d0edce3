#pragma once

// Statistics of one tensor, and of how it moved since an earlier checkpoint:
// the ones the Python package computes (python/ckpt/stats.py), with the same
// names and definitions, so that `ckpt trajectory` and `run.trajectory` agree.
// Values are accumulated in double precision, a block of elements at a time:
// no tensor is ever copied whole.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

#include "ckpt/tensor.hpp"
#include "element_values.hpp"

namespace ckpt::cli {

enum class Stat { norm, mean, std, max_abs, dist_first, dist_prev, changed };

struct StatSpec {
  Stat stat;
  std::string_view name;
};

// In the order of python/ckpt/stats.py's STATS.
inline constexpr std::array<StatSpec, 7> all_stats = {{{Stat::norm, "norm"},
                                                       {Stat::mean, "mean"},
                                                       {Stat::std, "std"},
                                                       {Stat::max_abs, "max_abs"},
                                                       {Stat::dist_first, "dist_first"},
                                                       {Stat::dist_prev, "dist_prev"},
                                                       {Stat::changed, "changed"}}};

inline constexpr double no_value = std::numeric_limits<double>::quiet_NaN();

// Elements converted per block: 32 KiB of doubles, which stay in cache for
// the passes a block takes.
inline constexpr std::size_t stats_block = 4096;

// Calls `visit(first, count)` for consecutive blocks of a tensor's elements.
template <class Visit>
void for_each_block(std::uint64_t count, Visit&& visit) {
  for (std::uint64_t first = 0; first < count; first += stats_block) {
    visit(first, static_cast<std::size_t>(std::min<std::uint64_t>(stats_block, count - first)));
  }
}

// norm, mean, population standard deviation and largest absolute value of the
// elements, as double.
struct Moments {
  std::uint64_t count = 0;
  double mean = 0;
  double m2 = 0;  // sum of squared deviations from the mean
  double sum_squares = 0;
  double max_abs = -std::numeric_limits<double>::infinity();

  // Each block's mean and deviations first, then merged into the totals
  // (Chan et al., as stats.py does): no cancellation even when the mean is far
  // larger than the spread.
  void add_block(const double* values, std::size_t size) {
    double sum = 0;
    for (std::size_t i = 0; i < size; ++i) sum += values[i];
    const double block_mean = sum / static_cast<double>(size);
    double block_m2 = 0;
    for (std::size_t i = 0; i < size; ++i) {
      const double deviation = values[i] - block_mean;
      block_m2 += deviation * deviation;
      sum_squares += values[i] * values[i];
      const double magnitude = std::fabs(values[i]);
      // A NaN wins, as in numpy's max: once max_abs is NaN no comparison is true.
      if (std::isnan(magnitude) || magnitude > max_abs) max_abs = magnitude;
    }
    const double before = static_cast<double>(count), added = static_cast<double>(size);
    const double merged = before + added;
    const double delta = block_mean - mean;
    mean += delta * added / merged;
    m2 += block_m2 + delta * delta * before * added / merged;
    count += size;
  }

  double value(Stat stat) const {
    if (stat == Stat::norm) return std::sqrt(sum_squares);  // 0 for an empty tensor
    if (count == 0) return no_value;
    if (stat == Stat::mean) return mean;
    if (stat == Stat::std) return std::sqrt(m2 / static_cast<double>(count));
    return max_abs;
  }
};

inline Moments moments_of(const Tensor& tensor) {
  Moments moments;
  const std::size_t size = dtype_size(tensor.dtype());
  double values[stats_block];
  for_each_block(tensor.numel(), [&](std::uint64_t first, std::size_t count) {
    element_values(tensor.dtype(), tensor.data() + first * size, count, values);
    moments.add_block(values, count);
  });
  return moments;
}

// L2 distance between two tensors of the same dtype and shape.
inline double distance(const Tensor& current, const Tensor& earlier) {
  const std::size_t size = dtype_size(current.dtype());
  double sum_squares = 0;
  double values[stats_block], earlier_values[stats_block];
  for_each_block(current.numel(), [&](std::uint64_t first, std::size_t count) {
    element_values(current.dtype(), current.data() + first * size, count, values);
    element_values(earlier.dtype(), earlier.data() + first * size, count, earlier_values);
    for (std::size_t i = 0; i < count; ++i) {
      const double gap = values[i] - earlier_values[i];
      sum_squares += gap * gap;
    }
  });
  return std::sqrt(sum_squares);
}

template <class Bits>
std::uint64_t count_differing(const std::byte* a, const std::byte* b, std::uint64_t count) {
  std::uint64_t differing = 0;
  for (std::uint64_t i = 0; i < count; ++i) {
    differing += load_element<Bits>(a + i * sizeof(Bits)) != load_element<Bits>(b + i * sizeof(Bits));
  }
  return differing;
}

// The fraction of elements whose stored bits differ (NaN for an empty tensor).
// A BOOL element is compared as the value it loads as, true for any nonzero
// byte, as the Python package reads it.
inline double changed_fraction(const Tensor& current, const Tensor& earlier) {
  const std::uint64_t count = current.numel();
  if (count == 0) return no_value;
  const std::byte* a = current.data();
  const std::byte* b = earlier.data();
  std::uint64_t changed = 0;
  if (current.dtype() == DType::BOOL) {
    for (std::uint64_t i = 0; i < count; ++i) changed += (a[i] != std::byte{0}) != (b[i] != std::byte{0});
  } else {
    switch (dtype_size(current.dtype())) {
      case 1: changed = count_differing<std::uint8_t>(a, b, count); break;
      case 2: changed = count_differing<std::uint16_t>(a, b, count); break;
      case 4: changed = count_differing<std::uint32_t>(a, b, count); break;
      default: changed = count_differing<std::uint64_t>(a, b, count); break;
    }
  }
  return static_cast<double>(changed) / static_cast<double>(count);
}

// Whether a statistic compares with an earlier tensor: only tensors of the
// same dtype and shape compare, NaN otherwise (or without an earlier one).
inline bool comparable(const Tensor& current, const Tensor* earlier) {
  return earlier != nullptr && earlier->dtype() == current.dtype() && earlier->shape() == current.shape();
}

// The statistics `stats` of `current`, in their order, against the tensor at
// the first and at the previous checkpoint that held it (null when none).
inline std::vector<double> tensor_statistics(const Tensor& current, const Tensor* first, const Tensor* previous,
                                             const std::vector<Stat>& stats) {
  const bool needs_moments = std::any_of(stats.begin(), stats.end(), [](Stat stat) {
    return stat == Stat::norm || stat == Stat::mean || stat == Stat::std || stat == Stat::max_abs;
  });
  const Moments moments = needs_moments ? moments_of(current) : Moments{};
  std::vector<double> values;
  for (const Stat stat : stats) {
    switch (stat) {
      case Stat::dist_first: values.push_back(comparable(current, first) ? distance(current, *first) : no_value); break;
      case Stat::dist_prev:
        values.push_back(comparable(current, previous) ? distance(current, *previous) : no_value);
        break;
      case Stat::changed:
        values.push_back(comparable(current, previous) ? changed_fraction(current, *previous) : no_value);
        break;
      default: values.push_back(moments.value(stat));
    }
  }
  return values;
}

}  // namespace ckpt::cli

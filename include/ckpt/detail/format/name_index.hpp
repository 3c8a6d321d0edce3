#pragma once

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "ckpt/detail/format/layout.hpp"

// Finds a tensor's record by name: the names in sorted order, viewing the
// records' own strings (one allocation, where a map allocates a node and a
// copy of the name per tensor; a file may hold 100,000 tensors). A template
// only so that programs that open no file do not compile it (see "Compile
// time" in docs/architecture.md).
namespace ckpt::detail {

template <class = void>
class NameIndex {
 public:
  NameIndex() = default;

  // `records` must outlive the index and keep their names in place.
  explicit NameIndex(const std::vector<TensorRecord>& records) : sorted_(records.size()) {
    for (std::size_t i = 0; i < records.size(); ++i) sorted_[i] = {records[i].name, i};
    sort_by_name();
  }

  std::optional<std::size_t> find(std::string_view name) const noexcept {
    const auto found = std::lower_bound(sorted_.begin(), sorted_.end(), name,
                                        [](const Entry& entry, std::string_view key) { return entry.first < key; });
    if (found == sorted_.end() || found->first != name) return std::nullopt;
    return found->second;
  }

  bool has_duplicates() const noexcept {
    return std::adjacent_find(sorted_.begin(), sorted_.end(),
                              [](const Entry& a, const Entry& b) { return a.first == b.first; }) != sorted_.end();
  }

 private:
  using Entry = std::pair<std::string_view, std::size_t>;

  // A ckpt file lists its tensors in a few runs of ascending names (one per
  // element size, docs/format.md): they are merged rather than sorted from
  // scratch. Other files, with more runs, are sorted.
  void sort_by_name() {
    constexpr std::size_t max_merged_runs = 16;
    const auto by_name = [](const Entry& a, const Entry& b) { return a.first < b.first; };
    std::size_t run_start = 0, runs = 1;
    for (std::size_t i = 1; i < sorted_.size() && runs <= max_merged_runs; ++i) {
      if (sorted_[i - 1].first < sorted_[i].first) continue;
      std::inplace_merge(sorted_.begin(), sorted_.begin() + run_start, sorted_.begin() + i, by_name);
      run_start = i;
      ++runs;
    }
    if (runs > max_merged_runs) {
      std::sort(sorted_.begin(), sorted_.end(), by_name);
    } else {
      std::inplace_merge(sorted_.begin(), sorted_.begin() + run_start, sorted_.end(), by_name);
    }
  }

  std::vector<Entry> sorted_;
};

}  // namespace ckpt::detail

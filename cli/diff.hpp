#pragma once

// ckpt diff A B: per tensor, equal, or how far apart (elements that differ,
// maximum absolute difference), or a change of shape or dtype; then the
// metadata. Exit 0 only if everything is identical.

#include <cmath>
#include <cstring>
#include <map>
#include <ostream>
#include <set>
#include <string>
#include <utility>

#include "args.hpp"
#include "common.hpp"
#include "element_values.hpp"
#include "formats.hpp"

namespace ckpt::cli {

struct TensorDifference {
  std::uint64_t differing = 0;  // elements whose bits differ
  double max_abs = 0;           // NaN when a NaN meets a number
};

// Tensors of the same dtype and shape, compared element by element.
inline TensorDifference compare_elements(const Tensor& a, const Tensor& b) {
  TensorDifference difference;
  const std::size_t size = dtype_size(a.dtype());
  const std::uint64_t count = a.numel();
  for (std::uint64_t i = 0; i < count; ++i) {
    const std::byte* x = a.data() + i * size;
    const std::byte* y = b.data() + i * size;
    if (std::memcmp(x, y, size) == 0) continue;
    ++difference.differing;
    const double gap = std::fabs(element_value(a.dtype(), x) - element_value(b.dtype(), y));
    if (std::isnan(gap) || std::isnan(difference.max_abs)) {
      difference.max_abs = std::nan("");
    } else {
      difference.max_abs = std::max(difference.max_abs, gap);
    }
  }
  return difference;
}

// One line describing how a tensor present in both files changed, or empty when equal.
inline std::string describe_change(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) {
    std::string change;
    if (a.dtype() != b.dtype())
      change += "dtype " + std::string(dtype_name(a.dtype())) + " -> " + std::string(dtype_name(b.dtype()));
    if (a.shape() != b.shape()) {
      change += (change.empty() ? "" : ", ") + std::string("shape ") + shape_to_string(a.shape()) + " -> " +
                shape_to_string(b.shape());
    }
    return change;
  }
  if (a.nbytes() == 0 || std::memcmp(a.data(), b.data(), a.nbytes()) == 0) return {};
  const TensorDifference difference = compare_elements(a, b);
  char max_abs[64];
  std::snprintf(max_abs, sizeof max_abs, "%.9g", difference.max_abs);
  return std::to_string(difference.differing) + " of " + std::to_string(a.numel()) +
         " elements differ, max abs difference " + max_abs;
}

inline int run_diff(const Arguments& args, std::ostream& out, std::ostream&) {
  const std::string& path_a = args.positionals()[0];
  const std::string& path_b = args.positionals()[1];
  require_existing(path_a);
  require_existing(path_b);
  const FileFormat format_a = input_format(path_a);
  const FileFormat format_b = input_format(path_b);
  const TensorSet a = load_tensors(path_a, format_a);
  const TensorSet b = load_tensors(path_b, format_b);

  std::map<std::string, std::pair<const Tensor*, const Tensor*>> tensors;
  for (const auto& [name, tensor] : a.tensors) tensors[name].first = &tensor;
  for (const auto& [name, tensor] : b.tensors) tensors[name].second = &tensor;
  std::size_t changed = 0;
  for (const auto& [name, pair] : tensors) {
    const auto [in_a, in_b] = pair;
    if (!in_b) {
      out << "-  " << name << ": only in " << path_a << "\n";
    } else if (!in_a) {
      out << "+  " << name << ": only in " << path_b << "\n";
    } else if (const std::string change = describe_change(*in_a, *in_b); !change.empty()) {
      out << "!  " << name << ": " << change << "\n";
    } else {
      out << "=  " << name << ": equal\n";
      continue;
    }
    ++changed;
  }
  std::set<std::string> metadata_keys;
  for (const auto& metadata : {a.metadata, b.metadata}) {
    for (const auto& item : metadata.items()) metadata_keys.insert(item.key());
  }
  std::size_t metadata_changed = 0;
  for (const std::string& key : metadata_keys) {
    const auto value_a = a.metadata.find(key), value_b = b.metadata.find(key);
    const bool has_a = value_a != a.metadata.end(), has_b = value_b != b.metadata.end();
    if (has_a && has_b && *value_a == *value_b) continue;
    ++metadata_changed;
    out << "!  metadata '" << key << "': " << (has_a ? value_a->dump() : "(absent)") << " -> "
        << (has_b ? value_b->dump() : "(absent)") << "\n";
  }
  if (changed == 0 && metadata_changed == 0) {
    out << "identical: " << tensors.size() << " tensors, metadata equal\n";
    return exit_ok;
  }
  out << "different: " << changed << " of " << tensors.size() << " tensors, " << metadata_changed << " metadata keys\n";
  return exit_problem;
}

}  // namespace ckpt::cli

#pragma once

// Where a piece of a global tensor lies, in one coordinate system for every
// kind of piece: the global tensor's row-major linear element indices. A box
// (offsets and extents per dimension) covers one contiguous run [a, b) of
// them per innermost row it spans, merged where rows follow each other; a
// flat range (ZeRO) is one run. Two pieces overlap where their sorted run
// lists do, which a merge finds in O(runs), never O(elements); and each
// overlapping run is one contiguous range in both pieces' local row-major
// order, so it is one byte range to copy.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// The elements of a global tensor one piece holds.
struct PieceGeometry {
  enum class Kind : std::uint8_t { box, flat };
  Kind kind = Kind::box;
  // box: the first index and the length per dimension; flat: {first linear
  // index} and {element count}.
  Shape offsets;
  Shape extents;

  static PieceGeometry box(Shape offsets, Shape extents) { return {Kind::box, std::move(offsets), std::move(extents)}; }
  template <class = void>
  static PieceGeometry whole(const Shape& shape) {
    return box(Shape(shape.size(), 0), shape);
  }
  static PieceGeometry flat(std::uint64_t begin, std::uint64_t count) { return {Kind::flat, {begin}, {count}}; }

  // Elements held; a valid geometry never overflows (see geometry_problem).
  std::uint64_t element_count() const {
    std::uint64_t count = 1;
    for (std::uint64_t extent : extents) count *= extent;
    return count;
  }
  // True when the piece is the whole tensor of `shape`, in either form.
  bool is_whole(const Shape& shape) const {
    if (kind == Kind::flat) return offsets[0] == 0 && extents[0] == element_count_of(shape);
    return extents == shape;
  }
  // The shape the piece is stored under in its file: the global shape when
  // whole (so other tools read it as the tensor itself), else the box's
  // extents or, for a flat range, its length.
  Shape stored_shape(const Shape& shape) const { return is_whole(shape) ? shape : extents; }

  static std::uint64_t element_count_of(const Shape& shape) {
    std::uint64_t count = 1;
    for (std::uint64_t extent : shape) count *= extent;
    return count;
  }

  friend bool operator==(const PieceGeometry& a, const PieceGeometry& b) {
    return a.kind == b.kind && a.offsets == b.offsets && a.extents == b.extents;
  }
  friend bool operator!=(const PieceGeometry& a, const PieceGeometry& b) { return !(a == b); }
  template <class = void>
  friend bool operator<(const PieceGeometry& a, const PieceGeometry& b) {
    // Field by field: std::tie's tuples and their comparison cost every
    // program that includes ckpt.hpp its compile time.
    if (a.kind != b.kind) return a.kind < b.kind;
    if (a.offsets != b.offsets) return a.offsets < b.offsets;
    return a.extents < b.extents;
  }
};

// Where a shard descriptor (ckpt::Shard, distributed/sharding.hpp) puts
// its local value: the global tensor's shape and the piece's place in it.
struct ShardPlacement {
  Shape shape;
  PieceGeometry geometry;
};

// "offsets [0, 4], extents [8, 4]" or "flat elements [12, 40)".
template <class = void>
std::string geometry_text(const PieceGeometry& geometry) {
  if (geometry.kind == PieceGeometry::Kind::flat) {
    return join({"flat elements [", geometry.offsets[0], ", ", geometry.offsets[0] + geometry.extents[0], ")"});
  }
  return join({"offsets ", shape_to_string(geometry.offsets), ", extents ", shape_to_string(geometry.extents)});
}

// What makes `geometry` unusable as a piece of a tensor of `shape`, or nullopt.
template <class = void>
std::optional<std::string> geometry_problem(const PieceGeometry& geometry, const Shape& shape) {
  const std::optional<std::uint64_t> total = checked_element_count(shape);
  if (!total) return join({"the global shape ", shape_to_string(shape), " overflows 64 bits"});
  if (geometry.kind == PieceGeometry::Kind::flat) {
    if (geometry.offsets.size() != 1 || geometry.extents.size() != 1)
      return std::string("a flat range needs one offset and one count");
    const std::uint64_t begin = geometry.offsets[0], count = geometry.extents[0];
    if (begin > *total || count > *total - begin) {
      return join({"expected a flat range within the ", *total, " elements of ", shape_to_string(shape), ", found [",
                   begin, ", ", begin, " + ", count, ")"});
    }
    return std::nullopt;
  }
  if (geometry.offsets.size() != shape.size() || geometry.extents.size() != shape.size()) {
    return join({"expected offsets and extents of ", shape.size(), " dimensions (the global shape ",
                 shape_to_string(shape), "), found ", shape_to_string(geometry.offsets), " and ",
                 shape_to_string(geometry.extents)});
  }
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (geometry.offsets[d] > shape[d] || geometry.extents[d] > shape[d] - geometry.offsets[d]) {
      return join({"expected a box within the global shape ", shape_to_string(shape), ", found ",
                   geometry_text(geometry), " (dimension ", d, ")"});
    }
  }
  return std::nullopt;
}

// "[3, 7]": the multi-index of linear element `index` of a tensor of `shape`.
template <class = void>
std::string index_text(std::uint64_t index, const Shape& shape) {
  Shape coordinates(shape.size());
  for (std::size_t d = shape.size(); d-- > 0;) {
    if (shape[d] == 0) break;
    coordinates[d] = index % shape[d];
    index /= shape[d];
  }
  return shape_to_string(coordinates);
}

// Global linear elements [begin, end).
struct Run {
  std::uint64_t begin = 0;
  std::uint64_t end = 0;
};

// The dimension a box's runs are cut at: the dimensions after it are taken
// whole, so each run spans all of them, and the box has one run per index of
// the dimensions before it. `shape` has at least one dimension.
template <class = void>
std::size_t run_split_dimension(const PieceGeometry& geometry, const Shape& shape) {
  std::size_t split = shape.size() - 1;
  while (split > 0 && geometry.offsets[split] == 0 && geometry.extents[split] == shape[split]) --split;
  return split;
}

// How many runs a piece (valid for `shape`) has, counted without visiting
// them: an index can declare a box of 10^12 runs in a few bytes.
template <class = void>
std::uint64_t run_count(const PieceGeometry& geometry, const Shape& shape) {
  if (geometry.element_count() == 0) return 0;
  if (geometry.kind == PieceGeometry::Kind::flat || shape.empty()) return 1;
  std::uint64_t count = 1;  // at most the piece's element count, so it never overflows
  const std::size_t split = run_split_dimension(geometry, shape);
  for (std::size_t d = 0; d < split; ++d) count *= geometry.extents[d];
  return count;
}

// The most runs the pieces of one tensor may form in all. Checking that they
// tile it holds every run in memory (24 bytes each here, about as much in
// Python's arrays), and loading visits each; 2^22 runs bound that to about
// 100 MB, while a column split of a tensor of a million rows over 4 ranks
// forms 4 million. A save refuses more (so that it never writes what a load
// refuses) and a reader refuses an index that declares more.
inline constexpr std::uint64_t max_tensor_runs = std::uint64_t(1) << 22;

// How `pieces` (each valid for `shape`) form more runs than max_tensor_runs,
// or nullopt. Run before tiling_problem, which enumerates them.
template <class = void>
std::optional<std::string> run_count_problem(const std::vector<const PieceGeometry*>& pieces, const Shape& shape) {
  std::uint64_t total = 0;  // saturates: a count past 2^64 - 1 reads as 2^64 - 1
  for (const PieceGeometry* piece : pieces) {
    const std::uint64_t runs = run_count(*piece, shape);
    total = runs > UINT64_MAX - total ? UINT64_MAX : total + runs;
  }
  if (total <= max_tensor_runs) return std::nullopt;
  return join({"expected the pieces to form at most ", max_tensor_runs,
               " runs of consecutive elements (a box forms one per row it does not span whole), found ", total});
}

// The runs of a piece in increasing order, each with the position of its
// first element in the piece's own row-major order. For a box, the runs are
// its rows over the first dimension that is not taken whole, together with
// every dimension after it: a row split is one run, a column split one run
// per row.
template <class = void>
class RunCursor {
 public:
  // `geometry` must be valid for `shape` (geometry_problem).
  RunCursor(const PieceGeometry& geometry, const Shape& shape) {
    if (geometry.element_count() == 0) return;  // holds nothing: no run
    if (geometry.kind == PieceGeometry::Kind::flat) {
      run_ = {geometry.offsets[0], geometry.offsets[0] + geometry.extents[0]};
      remaining_ = 1;
      return;
    }
    const std::size_t rank = shape.size();
    if (rank == 0) {  // a scalar: one element
      run_ = {0, 1};
      remaining_ = 1;
      return;
    }
    const std::size_t split = run_split_dimension(geometry, shape);
    strides_.assign(rank, 1);
    for (std::size_t d = rank - 1; d > 0; --d) strides_[d - 1] = strides_[d] * shape[d];
    length_ = geometry.extents[split] * strides_[split];
    first_ = geometry.offsets;
    extents_ = geometry.extents;
    outer_.assign(geometry.offsets.begin(), geometry.offsets.begin() + static_cast<std::ptrdiff_t>(split));
    inner_start_ = geometry.offsets[split] * strides_[split];
    remaining_ = 1;
    for (std::size_t d = 0; d < split; ++d) remaining_ *= geometry.extents[d];
    run_ = {start_of_outer(), start_of_outer() + length_};
  }

  bool done() const noexcept { return remaining_ == 0; }
  const Run& run() const noexcept { return run_; }
  // Elements of the piece before the current run.
  std::uint64_t local() const noexcept { return local_; }

  void next() {
    local_ += run_.end - run_.begin;
    if (--remaining_ == 0) return;
    // An odometer over the outer dimensions, the last one fastest.
    std::size_t d = outer_.size();
    while (d-- > 0) {
      if (++outer_[d] < first_[d] + extents_[d]) break;
      outer_[d] = first_[d];
    }
    run_.begin = start_of_outer();
    run_.end = run_.begin + length_;
  }

 private:
  std::uint64_t start_of_outer() const {
    std::uint64_t start = inner_start_;
    for (std::size_t d = 0; d < outer_.size(); ++d) start += outer_[d] * strides_[d];
    return start;
  }

  Run run_;
  std::uint64_t remaining_ = 0;  // runs left, the current one included
  std::uint64_t local_ = 0;
  std::uint64_t length_ = 0;
  std::uint64_t inner_start_ = 0;
  Shape strides_, first_, extents_, outer_;
};

// The first and one past the last global element a piece holds; empty (0, 0)
// for a piece of no element. A cheap test before a merge.
template <class = void>
Run piece_bounds(const PieceGeometry& geometry, const Shape& shape) {
  if (geometry.element_count() == 0) return {};
  if (geometry.kind == PieceGeometry::Kind::flat)
    return {geometry.offsets[0], geometry.offsets[0] + geometry.extents[0]};
  std::uint64_t first = 0, last = 0, stride = 1;
  for (std::size_t d = shape.size(); d-- > 0;) {
    first += geometry.offsets[d] * stride;
    last += (geometry.offsets[d] + geometry.extents[d] - 1) * stride;
    stride *= shape[d];
  }
  return {first, last + 1};
}

// One contiguous copy between two pieces: `count` elements from position
// `source` of one piece's local order to position `target` of the other's.
struct ElementCopy {
  std::uint64_t source = 0;
  std::uint64_t target = 0;
  std::uint64_t count = 0;
};

// Calls `copy(ElementCopy)` for the elements `source` and `target` (pieces
// of one tensor of `shape`) have in common, in increasing global order (and
// so in increasing local order on both sides), merging overlaps that are
// contiguous on both sides into one copy.
template <class Copy>
void for_each_overlap(const PieceGeometry& source, const PieceGeometry& target, const Shape& shape, Copy&& copy) {
  const Run a = piece_bounds(source, shape), b = piece_bounds(target, shape);
  if (std::max(a.begin, b.begin) >= std::min(a.end, b.end)) return;
  RunCursor<> from(source, shape), to(target, shape);
  ElementCopy pending;
  while (!from.done() && !to.done()) {
    const std::uint64_t begin = std::max(from.run().begin, to.run().begin);
    const std::uint64_t end = std::min(from.run().end, to.run().end);
    if (begin < end) {
      const std::uint64_t source_at = from.local() + (begin - from.run().begin);
      const std::uint64_t target_at = to.local() + (begin - to.run().begin);
      if (pending.count != 0 && pending.source + pending.count == source_at &&
          pending.target + pending.count == target_at) {
        pending.count += end - begin;
      } else {
        if (pending.count != 0) copy(pending);
        pending = {source_at, target_at, end - begin};
      }
    }
    // Advance whichever run ends first (both when they end together).
    const std::uint64_t from_end = from.run().end, to_end = to.run().end;
    if (from_end <= to_end) from.next();
    if (to_end <= from_end) to.next();
  }
  if (pending.count != 0) copy(pending);
}

// How a set of pieces fails to tile a tensor of `shape` exactly (every
// element held by exactly one piece), or nullopt. `label(i)` names piece i in
// the message. O(runs log runs) in time and O(runs) in memory: check
// run_count_problem first.
template <class Label>
std::optional<std::string> tiling_problem(const std::vector<const PieceGeometry*>& pieces, const Shape& shape,
                                          Label&& label) {
  struct OwnedRun {
    Run run;
    std::size_t piece;
  };
  std::vector<OwnedRun> runs;
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    for (RunCursor<> cursor(*pieces[i], shape); !cursor.done(); cursor.next()) runs.push_back({cursor.run(), i});
  }
  std::sort(runs.begin(), runs.end(), [](const OwnedRun& x, const OwnedRun& y) { return x.run.begin < y.run.begin; });
  const std::uint64_t total = PieceGeometry::element_count_of(shape);
  std::uint64_t covered = 0;  // elements [0, covered) are held
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const Run& run = runs[i].run;
    if (run.begin > covered) {
      return join(
          {"elements ", index_text(covered, shape), " to ", index_text(run.begin - 1, shape), " are held by no piece"});
    }
    if (run.begin < covered) {
      return join({label(runs[i - 1].piece), " and ", label(runs[i].piece), " both hold element ",
                   index_text(run.begin, shape)});
    }
    covered = run.end;
  }
  if (covered < total) {
    return join(
        {"elements ", index_text(covered, shape), " to ", index_text(total - 1, shape), " are held by no piece"});
  }
  return std::nullopt;
}

}  // namespace ckpt::detail

#pragma once

// Describing distributed state: in describe(), a member can be this rank's
// piece of a global tensor.
//
//   ar("fc1/weight", ckpt::box_shard(local_rows, {4096, 1024}, {row0, 0}, {rows, 1024}))  // rows row0.. of it
//     ("adam/exp_avg", ckpt::flat_shard(moments, {4096, 1024}, begin, count))            // ZeRO: a flat range
//     ("fc1/bias", ckpt::replicated(bias));                                               // the same on every rank
//
// A box is any sub-block (rows, columns, 2-D blocks, uneven sizes); a flat
// range is a contiguous range of the row-major flattened tensor, as ZeRO
// shards optimizer state. Pieces that several ranks describe identically are
// replicas: the save writes one of them. A tensor described without a shard
// is replicated: every rank that describes it must hold the same bytes.
// Only ckpt::DistributedCheckpoint saves and loads shards.

#include <cstdint>
#include <utility>

#include "ckpt/detail/distributed/geometry.hpp"
#include "ckpt/detail/state/archive.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt {

// This rank's piece of a global tensor: `local` holds the piece's elements
// in row-major order (for a box, as a tensor of its extents). `Local` is any
// tensor type (std::vector, ckpt::Tensor, a type with tensor_traits); a load
// resizes it to the piece where its traits allow.
template <class Local>
class Shard : public detail::ShardPlacement {
 public:
  Shard(Local& local, Shape global_shape, detail::PieceGeometry geometry)
      : detail::ShardPlacement{std::move(global_shape), std::move(geometry)}, local_(&local) {}

  Local& local() const noexcept { return *local_; }
  const Shape& global_shape() const noexcept { return shape; }

 private:
  Local* local_;
};

// The box of `extents` elements starting at `offsets` of a tensor of `global_shape`.
template <class Local>
Shard<Local> box_shard(Local& local, Shape global_shape, Shape offsets, Shape extents) {
  return Shard<Local>(local, std::move(global_shape),
                      detail::PieceGeometry::box(std::move(offsets), std::move(extents)));
}

// Elements [begin, begin + count) of the row-major flattened tensor of `global_shape`.
template <class Local>
Shard<Local> flat_shard(Local& local, Shape global_shape, std::uint64_t begin, std::uint64_t count) {
  return Shard<Local>(local, std::move(global_shape), detail::PieceGeometry::flat(begin, count));
}

// Marks a tensor as identical on every rank that describes it, which is what
// a tensor without a shard is: the save writes it once, whole.
template <class T>
T& replicated(T& value) noexcept {
  return value;
}

// A range of indices.
struct Split {
  std::uint64_t begin = 0;
  std::uint64_t count = 0;
};

// Part `part` of `extent` cut into `parts` ranges as equal as can be: the
// first `extent % parts` ranges are one longer. even_split(10, 4, i) gives
// [0, 3), [3, 6), [6, 8), [8, 10).
inline Split even_split(std::uint64_t extent, std::uint64_t parts, std::uint64_t part) {
  const std::uint64_t base = extent / parts, longer = extent % parts;
  return {part * base + (part < longer ? part : longer), base + (part < longer ? 1 : 0)};
}

// A shard is only meaningful with the other ranks' pieces, so a plain
// Checkpoint refuses it at compile time (the bodies are instantiated only
// when a plain archive calls them).
template <class Local>
struct tensor_traits<Shard<Local>> {
  template <class S = Shard<Local>>
  static TensorView view(const S&) {
    static_assert(detail::dependent_false_v<S>,
                  "ckpt::box_shard / ckpt::flat_shard describe a piece of a distributed tensor: save and load the "
                  "state with ckpt::DistributedCheckpoint (<ckpt/distributed.hpp>), not ckpt::Checkpoint");
    return {};
  }
  template <class S = Shard<Local>>
  static void* load_target(S&, const Shape&) {
    static_assert(detail::dependent_false_v<S>,
                  "ckpt::box_shard / ckpt::flat_shard describe a piece of a distributed tensor: save and load the "
                  "state with ckpt::DistributedCheckpoint (<ckpt/distributed.hpp>), not ckpt::Checkpoint");
    return nullptr;
  }
};

}  // namespace ckpt

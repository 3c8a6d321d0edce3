#pragma once

// A sharded state for distributed tests: tensors of every dtype family split
// in every way the issue names (rows, columns, 2-D blocks, uneven, flat ZeRO
// ranges, replicated, and a mix of both), with one split for saving and
// another for loading, so that every load reshards. Each element's bytes
// follow from the tensor's name and the element's global index alone
// (sample_byte; tests/distributed/check_index.py computes the same), so any
// piece can be checked byte for byte wherever it was loaded.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ckpt/distributed.hpp"

namespace ckpt::test {

enum class Layout { whole, rows, columns, blocks, uneven, reversed, flat, row_groups };

struct SampleTensor {
  const char* name;
  DType dtype;
  Shape shape;
  Layout saved;   // how the saving ranks split it
  Layout loaded;  // how the loading ranks do
};

inline const std::vector<SampleTensor>& sample_tensors() {
  static const std::vector<SampleTensor> tensors = {
      {"layers/0/rows", DType::F32, {13, 7}, Layout::rows, Layout::columns},
      {"layers/0/columns", DType::F64, {6, 11}, Layout::columns, Layout::rows},
      {"layers/1/blocks", DType::I32, {10, 9}, Layout::blocks, Layout::flat},
      {"layers/1/uneven", DType::U8, {17}, Layout::uneven, Layout::reversed},
      {"optimizer/zero", DType::F32, {5, 7, 3}, Layout::flat, Layout::blocks},
      {"embedding/replicated", DType::BF16, {4, 4}, Layout::whole, Layout::rows},
      {"head/mixed", DType::I64, {8, 6}, Layout::row_groups, Layout::whole},
      {"head/mask", DType::BOOL, {9}, Layout::rows, Layout::whole},
      {"scalar", DType::F64, {}, Layout::whole, Layout::whole},
      {"empty", DType::F32, {0, 5}, Layout::whole, Layout::blocks},
  };
  return tensors;
}

// Byte `byte` of element `index` of the tensor `name`.
inline std::uint8_t sample_byte(const std::string& name, DType dtype, std::uint64_t index, std::size_t byte) {
  if (dtype == DType::BOOL) return index % 3 == 0 ? 1 : 0;
  std::uint64_t salt = 0;
  for (char c : name) salt += static_cast<unsigned char>(c);
  return static_cast<std::uint8_t>((index * 131 + byte * 17 + salt) & 0xFF);
}

// Rows and columns of a 2-D grid of `world` ranks, as square as can be.
inline std::pair<std::uint64_t, std::uint64_t> rank_grid(int world) {
  std::uint64_t rows = 1;
  for (std::uint64_t p = 1; p * p <= static_cast<std::uint64_t>(world); ++p) {
    if (world % p == 0) rows = p;
  }
  return {rows, static_cast<std::uint64_t>(world) / rows};
}

// The piece rank `rank` of `world` holds of a tensor of `shape` under `layout`.
inline detail::PieceGeometry sample_piece(Layout layout, const Shape& shape, int rank, int world) {
  const auto r = static_cast<std::uint64_t>(rank), w = static_cast<std::uint64_t>(world);
  Shape offsets(shape.size(), 0), extents = shape;
  const auto cut = [&](std::size_t dimension, Split split) {
    offsets[dimension] = split.begin;
    extents[dimension] = split.count;
  };
  switch (layout) {
    case Layout::whole: break;
    case Layout::rows: cut(0, even_split(shape[0], w, r)); break;
    case Layout::columns: cut(1, even_split(shape[1], w, r)); break;
    case Layout::reversed: cut(0, even_split(shape[0], w, w - 1 - r)); break;
    case Layout::row_groups: {
      const std::uint64_t groups = w < 2 ? 1 : 2;  // two tensor-parallel groups, each replicated
      cut(0, even_split(shape[0], groups, r % groups));
      break;
    }
    case Layout::blocks: {
      const auto [grid_rows, grid_columns] = rank_grid(world);
      cut(0, even_split(shape[0], grid_rows, r / grid_columns));
      cut(1, even_split(shape[1], grid_columns, r % grid_columns));
      break;
    }
    case Layout::uneven: {  // rank r holds a share proportional to r + 1
      const std::uint64_t total = w * (w + 1) / 2, before = r * (r + 1) / 2, through = (r + 1) * (r + 2) / 2;
      const std::uint64_t begin = shape[0] * before / total, end = shape[0] * through / total;
      cut(0, {begin, end - begin});
      break;
    }
    case Layout::flat: {
      const Split split = even_split(detail::PieceGeometry::element_count_of(shape), w, r);
      return detail::PieceGeometry::flat(split.begin, split.count);
    }
  }
  return detail::PieceGeometry::box(offsets, extents);
}

// Each tensor of sample_tensors() as this rank's piece, plus metadata.
struct SampleState {
  int rank = 0;
  int world = 1;
  bool loading = false;               // use the loading split
  std::function<void()> on_describe;  // a test's hook: throw, or kill the rank
  std::map<std::string, Tensor> locals;
  std::uint64_t step = 0;
  std::string note;

  detail::PieceGeometry piece(const SampleTensor& tensor) const {
    return sample_piece(loading ? tensor.loaded : tensor.saved, tensor.shape, rank, world);
  }

  template <class Archive>
  void describe(Archive& ar) {
    if (on_describe) on_describe();
    for (const SampleTensor& tensor : sample_tensors()) {
      Tensor& local = locals[tensor.name];
      const Layout layout = loading ? tensor.loaded : tensor.saved;
      const detail::PieceGeometry geometry = piece(tensor);
      if (layout == Layout::whole) {
        ar(tensor.name, replicated(local));
      } else if (geometry.kind == detail::PieceGeometry::Kind::flat) {
        ar(tensor.name, flat_shard(local, tensor.shape, geometry.offsets[0], geometry.extents[0]));
      } else {
        ar(tensor.name, box_shard(local, tensor.shape, geometry.offsets, geometry.extents));
      }
    }
    ar("step", step)("note", note);
  }
};

// Calls `visit(local position, global index)` for each element of a piece.
template <class Visit>
void for_each_element(const detail::PieceGeometry& geometry, const Shape& shape, Visit&& visit) {
  for (detail::RunCursor cursor(geometry, shape); !cursor.done(); cursor.next()) {
    for (std::uint64_t global = cursor.run().begin; global < cursor.run().end; ++global) {
      visit(cursor.local() + (global - cursor.run().begin), global);
    }
  }
}

// The sample content of this rank's pieces, as saving ranks hold them.
inline SampleState sample_for_saving(int rank, int world, std::uint64_t step) {
  SampleState state;
  state.rank = rank;
  state.world = world;
  state.step = step;
  state.note = "saved by " + std::to_string(world) + " ranks";
  for (const SampleTensor& tensor : sample_tensors()) {
    const detail::PieceGeometry geometry = state.piece(tensor);
    Tensor local = Tensor::allocate(tensor.dtype, geometry.stored_shape(tensor.shape));
    const std::size_t size = dtype_size(tensor.dtype);
    for_each_element(geometry, tensor.shape, [&](std::uint64_t position, std::uint64_t global) {
      for (std::size_t byte = 0; byte < size; ++byte) {
        local.mutable_data()[position * size + byte] = std::byte{sample_byte(tensor.name, tensor.dtype, global, byte)};
      }
    });
    state.locals[tensor.name] = std::move(local);
  }
  return state;
}

// An empty state for rank `rank` of `world` loading ranks.
inline SampleState sample_for_loading(int rank, int world) {
  SampleState state;
  state.rank = rank;
  state.world = world;
  state.loading = true;
  return state;
}

// What differs between the state's pieces and the sample content, one line
// per tensor; empty when every byte is right.
inline std::vector<std::string> sample_differences(const SampleState& state) {
  std::vector<std::string> problems;
  for (const SampleTensor& tensor : sample_tensors()) {
    const detail::PieceGeometry geometry = state.piece(tensor);
    const auto found = state.locals.find(tensor.name);
    const Shape expected_shape = geometry.stored_shape(tensor.shape);
    if (found == state.locals.end() || found->second.dtype() != tensor.dtype ||
        found->second.shape() != expected_shape) {
      problems.push_back(std::string(tensor.name) + ": expected " + std::string(dtype_name(tensor.dtype)) + " " +
                         shape_to_string(expected_shape) + ", found another dtype or shape");
      continue;
    }
    const std::size_t size = dtype_size(tensor.dtype);
    std::uint64_t wrong = 0;
    for_each_element(geometry, tensor.shape, [&](std::uint64_t position, std::uint64_t global) {
      for (std::size_t byte = 0; byte < size; ++byte) {
        if (found->second.data()[position * size + byte] !=
            std::byte{sample_byte(tensor.name, tensor.dtype, global, byte)}) {
          ++wrong;
        }
      }
    });
    if (wrong != 0) problems.push_back(std::string(tensor.name) + ": " + std::to_string(wrong) + " wrong bytes");
  }
  return problems;
}

}  // namespace ckpt::test

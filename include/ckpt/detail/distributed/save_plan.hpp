#pragma once

// The plan of a distributed save, computed by every rank from every rank's
// description of the pieces it holds, so that all ranks reach the same plan
// (and the same errors) without another message. It checks that the ranks
// agree on each tensor's dtype and global shape and that the pieces tile each
// tensor; keeps one copy of each piece several ranks hold (replicated data);
// and chooses who writes each piece so that bytes are balanced across ranks,
// the way Megatron-core's fully parallel save does: pieces with the fewest
// holders first, then the largest, each to its least-loaded holder.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "ckpt/detail/distributed/file_names.hpp"
#include "ckpt/detail/distributed/geometry.hpp"
#include "ckpt/detail/distributed/wire.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// One piece of a global tensor as a rank describes it (no data).
struct PieceDescription {
  std::string name;
  DType dtype = DType::U8;
  Shape shape;  // the global tensor's
  PieceGeometry geometry;
};

template <class = void>
void encode_descriptions(WireWriter& writer, const std::vector<PieceDescription>& pieces) {
  writer.u64(pieces.size());
  for (const PieceDescription& piece : pieces) {
    writer.text(piece.name).u64(static_cast<std::uint64_t>(piece.dtype)).shape(piece.shape);
    writer.u64(static_cast<std::uint64_t>(piece.geometry.kind))
        .shape(piece.geometry.offsets)
        .shape(piece.geometry.extents);
  }
}

template <class = void>
std::vector<PieceDescription> decode_descriptions(WireReader& reader) {
  std::vector<PieceDescription> pieces(reader.u64());
  for (PieceDescription& piece : pieces) {
    piece.name = reader.text();
    piece.dtype = static_cast<DType>(reader.u64());
    piece.shape = reader.shape();
    piece.geometry.kind = static_cast<PieceGeometry::Kind>(reader.u64());
    piece.geometry.offsets = reader.shape();
    piece.geometry.extents = reader.shape();
  }
  return pieces;
}

// Suffix of the stored name of a piece that is not a whole tensor: "w#0",
// "w#1", ... in the order of the pieces' first elements.
inline constexpr char piece_name_separator = '#';

struct PiecePlan {
  PieceGeometry geometry;
  std::vector<int> holders;  // ranks that describe this piece, ascending
  int writer = -1;           // the one of them that writes it
  std::string stored_name;   // its name in the writer's file
  std::uint64_t bytes = 0;
};

struct TensorPlan {
  std::string name;
  DType dtype = DType::U8;
  Shape shape;
  std::vector<PiecePlan> pieces;  // ordered by first element
};

struct SavePlan {
  std::vector<TensorPlan> tensors;        // ordered by name
  std::vector<int> writers;               // ranks that write a file, ascending
  std::vector<std::uint64_t> rank_bytes;  // bytes each rank writes
  std::vector<std::string> rank_files;    // each rank's file name, empty when it writes none
};

// The pieces `rank` writes, each with its tensor, in plan order: the order
// of the rank's file.
template <class = void>
std::vector<std::pair<const TensorPlan*, const PiecePlan*>> pieces_written_by(const SavePlan& plan, int rank) {
  std::vector<std::pair<const TensorPlan*, const PiecePlan*>> pieces;
  for (const TensorPlan& tensor : plan.tensors) {
    for (const PiecePlan& piece : tensor.pieces) {
      if (piece.writer == rank) pieces.emplace_back(&tensor, &piece);
    }
  }
  return pieces;
}

template <class = void>
std::string ranks_text(const std::vector<int>& ranks) {
  std::string text = ranks.size() == 1 ? "rank " : "ranks ";
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i == 3 && ranks.size() > 4) return join({text, ", ... (", ranks.size(), " ranks)"});
    text += join({(i ? ", " : ""), ranks[i]});
  }
  return text;
}

namespace save_plan {

// Writers for every piece, greedily balancing bytes.
template <class = void>
void assign_writers(SavePlan& plan, std::size_t world_size) {
  struct Candidate {
    std::size_t holders;
    std::uint64_t bytes;
    std::size_t tensor, piece;
  };
  std::vector<Candidate> order;
  for (std::size_t t = 0; t < plan.tensors.size(); ++t) {
    for (std::size_t p = 0; p < plan.tensors[t].pieces.size(); ++p) {
      const PiecePlan& piece = plan.tensors[t].pieces[p];
      order.push_back({piece.holders.size(), piece.bytes, t, p});
    }
  }
  // Pieces with the fewest holders are placed first (they have no choice),
  // then the largest; names and positions break ties, so every rank agrees.
  std::sort(order.begin(), order.end(), [](const Candidate& a, const Candidate& b) {
    return std::make_tuple(a.holders, ~a.bytes, a.tensor, a.piece) <
           std::make_tuple(b.holders, ~b.bytes, b.tensor, b.piece);
  });
  plan.rank_bytes.assign(world_size, 0);
  std::vector<std::size_t> rank_pieces(world_size, 0);
  for (const Candidate& candidate : order) {
    PiecePlan& piece = plan.tensors[candidate.tensor].pieces[candidate.piece];
    int best = piece.holders.front();
    for (int holder : piece.holders) {
      if (plan.rank_bytes[holder] < plan.rank_bytes[best]) best = holder;
    }
    piece.writer = best;
    plan.rank_bytes[best] += piece.bytes;
    ++rank_pieces[best];
  }
  plan.rank_files.assign(world_size, "");
  for (std::size_t rank = 0; rank < world_size; ++rank) {
    if (rank_pieces[rank] != 0) plan.writers.push_back(static_cast<int>(rank));
  }
  for (std::size_t i = 0; i < plan.writers.size(); ++i) {
    plan.rank_files[plan.writers[i]] = rank_file_name(i + 1, plan.writers.size());
  }
}

// Orders a tensor's pieces, names them and checks that they tile it.
template <class = void>
void finish_tensor(TensorPlan& tensor, const std::string& directory) {
  std::sort(tensor.pieces.begin(), tensor.pieces.end(), [&](const PiecePlan& a, const PiecePlan& b) {
    const std::uint64_t first_a = piece_bounds(a.geometry, tensor.shape).begin;
    const std::uint64_t first_b = piece_bounds(b.geometry, tensor.shape).begin;
    return first_a != first_b ? first_a < first_b : a.geometry < b.geometry;
  });
  std::vector<const PieceGeometry*> geometries;
  for (const PiecePlan& piece : tensor.pieces) geometries.push_back(&piece.geometry);
  const auto label = [&](std::size_t i) {
    return join(
        {"the piece of ", ranks_text(tensor.pieces[i].holders), " (", geometry_text(tensor.pieces[i].geometry), ")"});
  };
  // A save refuses what a load of its index would refuse.
  if (const auto problem = run_count_problem(geometries, tensor.shape)) {
    throw ArgumentError(ErrorId::argument_invalid, directory, tensor.name,
                        join({"the ranks' pieces of ", dtype_name(tensor.dtype), " ", shape_to_string(tensor.shape),
                              " are split too finely: ", *problem}));
  }
  if (const auto problem = tiling_problem(geometries, tensor.shape, label)) {
    throw ArgumentError(ErrorId::argument_invalid, directory, tensor.name,
                        join({"the ranks' pieces of ", dtype_name(tensor.dtype), " ", shape_to_string(tensor.shape),
                              " do not tile it: ", *problem,
                              "; expected every element held by one piece (identical pieces on several ranks are "
                              "replicas)"}));
  }
  for (std::size_t i = 0; i < tensor.pieces.size(); ++i) {
    PiecePlan& piece = tensor.pieces[i];
    piece.stored_name = piece.geometry.is_whole(tensor.shape)
                            ? tensor.name
                            : join({tensor.name, std::string_view(&piece_name_separator, 1), i});
    piece.bytes = piece.geometry.element_count() * dtype_size(tensor.dtype);
  }
}

}  // namespace save_plan

// The plan for pieces described by each rank (`by_rank[r]` from rank r).
// Throws ArgumentError naming `directory` and the tensor when the ranks
// disagree on a tensor or their pieces do not tile it.
template <class = void>
SavePlan make_save_plan(const std::vector<std::vector<PieceDescription>>& by_rank, const std::string& directory) {
  struct Gathered {
    DType dtype;
    Shape shape;
    int first_rank;
    std::map<PieceGeometry, std::vector<int>> holders;
  };
  std::map<std::string, Gathered> tensors;
  for (std::size_t rank = 0; rank < by_rank.size(); ++rank) {
    const int r = static_cast<int>(rank);
    for (const PieceDescription& piece : by_rank[rank]) {
      auto [entry, created] = tensors.try_emplace(piece.name, Gathered{piece.dtype, piece.shape, r, {}});
      Gathered& tensor = entry->second;
      if (!created && (tensor.dtype != piece.dtype || tensor.shape != piece.shape)) {
        throw ArgumentError(ErrorId::argument_invalid, directory, piece.name,
                            join({"rank ", tensor.first_rank, " describes ", dtype_name(tensor.dtype), " ",
                                  shape_to_string(tensor.shape), ", rank ", r, " describes ", dtype_name(piece.dtype),
                                  " ", shape_to_string(piece.shape),
                                  "; expected every rank to describe one dtype and global shape per tensor"}));
      }
      // A piece of no element holds nothing to write, unless it is the
      // whole (empty) tensor, which must still be found by name.
      if (piece.geometry.element_count() == 0 && !piece.geometry.is_whole(piece.shape)) continue;
      tensor.holders[piece.geometry].push_back(r);
    }
  }
  SavePlan plan;
  std::set<std::string> names;
  for (const auto& entry : tensors) names.insert(entry.first);
  for (auto& [name, gathered] : tensors) {
    TensorPlan tensor{name, gathered.dtype, gathered.shape, {}};
    for (auto& [geometry, holders] : gathered.holders)
      tensor.pieces.push_back({geometry, std::move(holders), -1, "", 0});
    save_plan::finish_tensor(tensor, directory);
    for (const PiecePlan& piece : tensor.pieces) {
      if (piece.stored_name != name && names.count(piece.stored_name)) {
        throw ArgumentError(
            ErrorId::argument_duplicate_name, directory, piece.stored_name,
            join({"a piece of tensor '", name, "' is stored under this name, which another tensor has"}));
      }
      validate_name(piece.stored_name, directory);
    }
    plan.tensors.push_back(std::move(tensor));
  }
  save_plan::assign_writers(plan, by_rank.size());
  return plan;
}

}  // namespace ckpt::detail

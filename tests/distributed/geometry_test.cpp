// Pieces of global tensors as runs of global linear indices: enumeration,
// overlaps between two splits, and the tiling check.

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"

namespace ckpt::detail {
namespace {

std::vector<std::pair<std::uint64_t, std::uint64_t>> runs_of(const PieceGeometry& geometry, const Shape& shape) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> runs;
  std::uint64_t local = 0;
  for (RunCursor cursor(geometry, shape); !cursor.done(); cursor.next()) {
    EXPECT_EQ(cursor.local(), local) << "local positions follow the runs in order";
    local += cursor.run().end - cursor.run().begin;
    runs.emplace_back(cursor.run().begin, cursor.run().end);
  }
  EXPECT_EQ(local, geometry.element_count());
  EXPECT_EQ(run_count(geometry, shape), runs.size()) << "counted without enumerating, as many";
  return runs;
}

using Runs = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

TEST(Runs, RowBlockIsOneRun) { EXPECT_EQ(runs_of(PieceGeometry::box({1, 0}, {2, 8}), {4, 8}), (Runs{{8, 24}})); }

TEST(Runs, ColumnBlockIsOneRunPerRow) {
  EXPECT_EQ(runs_of(PieceGeometry::box({0, 2}, {3, 2}), {3, 5}), (Runs{{2, 4}, {7, 9}, {12, 14}}));
}

TEST(Runs, InnerBlockOfThreeDimensions) {
  // Dimensions after the first one cut whole: rows of 2 x 3 elements merge.
  EXPECT_EQ(runs_of(PieceGeometry::box({0, 1, 0}, {2, 2, 3}), {2, 4, 3}), (Runs{{3, 9}, {15, 21}}));
  // The middle dimension cut, the last one partly: one run per (i, j).
  EXPECT_EQ(runs_of(PieceGeometry::box({1, 2, 1}, {1, 2, 2}), {2, 4, 3}), (Runs{{19, 21}, {22, 24}}));
}

TEST(Runs, FlatRangeScalarAndEmptyPieces) {
  EXPECT_EQ(runs_of(PieceGeometry::flat(5, 7), {3, 4}), (Runs{{5, 12}}));
  EXPECT_EQ(runs_of(PieceGeometry::whole({}), {}), (Runs{{0, 1}}));
  EXPECT_TRUE(runs_of(PieceGeometry::box({0, 3}, {4, 0}), {4, 3}).empty());
  EXPECT_TRUE(runs_of(PieceGeometry::flat(4, 0), {8}).empty());
}

TEST(Runs, GeometryProblemsAreExplained) {
  EXPECT_FALSE(geometry_problem(PieceGeometry::box({2, 0}, {2, 3}), {4, 3}));
  const auto beyond = geometry_problem(PieceGeometry::box({3, 0}, {2, 3}), {4, 3});
  ASSERT_TRUE(beyond);
  EXPECT_NE(beyond->find("expected a box within the global shape [4, 3], found offsets [3, 0], extents [2, 3]"),
            std::string::npos)
      << *beyond;
  const auto rank = geometry_problem(PieceGeometry::box({0}, {4}), {4, 3});
  ASSERT_TRUE(rank);
  EXPECT_NE(rank->find("expected offsets and extents of 2 dimensions"), std::string::npos) << *rank;
  const auto flat = geometry_problem(PieceGeometry::flat(10, 3), {4, 3});
  ASSERT_TRUE(flat);
  EXPECT_NE(flat->find("within the 12 elements"), std::string::npos) << *flat;
}

// Copies every element of `target` from `source`'s local order by the
// overlaps, then checks each element landed where its global index says.
void expect_overlaps_copy_exactly(const PieceGeometry& source, const PieceGeometry& target, const Shape& shape) {
  std::vector<std::uint64_t> source_globals, target_globals;
  for (RunCursor c(source, shape); !c.done(); c.next()) {
    for (std::uint64_t g = c.run().begin; g < c.run().end; ++g) source_globals.push_back(g);
  }
  for (RunCursor c(target, shape); !c.done(); c.next()) {
    for (std::uint64_t g = c.run().begin; g < c.run().end; ++g) target_globals.push_back(g);
  }
  std::vector<std::uint64_t> copied(target_globals.size(), UINT64_MAX);
  std::uint64_t previous_end = 0;
  for_each_overlap(source, target, shape, [&](const ElementCopy& copy) {
    EXPECT_GE(copy.source, previous_end) << "copies come in increasing source order";
    previous_end = copy.source + copy.count;
    for (std::uint64_t i = 0; i < copy.count; ++i) copied.at(copy.target + i) = source_globals.at(copy.source + i);
  });
  for (std::size_t i = 0; i < target_globals.size(); ++i) {
    const bool in_source =
        std::find(source_globals.begin(), source_globals.end(), target_globals[i]) != source_globals.end();
    if (in_source) {
      EXPECT_EQ(copied[i], target_globals[i]) << "target position " << i;
    } else {
      EXPECT_EQ(copied[i], UINT64_MAX) << "target position " << i << " is not in the source";
    }
  }
}

TEST(Overlaps, RowsAgainstColumnsBlocksAndFlatRanges) {
  const Shape shape{7, 5};
  const std::vector<PieceGeometry> sources = {PieceGeometry::box({2, 0}, {3, 5}), PieceGeometry::box({0, 1}, {7, 3}),
                                              PieceGeometry::box({1, 2}, {4, 2}), PieceGeometry::flat(6, 17),
                                              PieceGeometry::whole(shape)};
  for (const PieceGeometry& source : sources) {
    for (const PieceGeometry& target : sources) {
      SCOPED_TRACE(geometry_text(source) + " -> " + geometry_text(target));
      expect_overlaps_copy_exactly(source, target, shape);
    }
  }
}

TEST(Overlaps, ContiguousOverlapsMergeIntoOneCopy) {
  // The same columns on both sides: one copy per piece, not one per row.
  std::vector<ElementCopy> copies;
  for_each_overlap(PieceGeometry::box({0, 2}, {6, 3}), PieceGeometry::box({0, 2}, {6, 3}), {6, 8},
                   [&](const ElementCopy& copy) { copies.push_back(copy); });
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].count, 18u);
  // Disjoint pieces: no copy at all.
  copies.clear();
  for_each_overlap(PieceGeometry::box({0, 0}, {3, 8}), PieceGeometry::box({3, 0}, {3, 8}), {6, 8},
                   [&](const ElementCopy& copy) { copies.push_back(copy); });
  EXPECT_TRUE(copies.empty());
}

TEST(Tiling, ReportsGapsAndOverlapsWithIndices) {
  const Shape shape{4, 3};
  const PieceGeometry top = PieceGeometry::box({0, 0}, {2, 3}), bottom = PieceGeometry::box({2, 0}, {2, 3});
  const auto label = [](std::size_t i) { return "piece " + std::to_string(i); };
  EXPECT_FALSE(tiling_problem({&top, &bottom}, shape, label));
  const auto gap = tiling_problem({&top}, shape, label);
  ASSERT_TRUE(gap);
  EXPECT_EQ(*gap, "elements [2, 0] to [3, 2] are held by no piece");
  const PieceGeometry middle = PieceGeometry::flat(5, 2);
  const auto overlap = tiling_problem({&top, &bottom, &middle}, shape, label);
  ASSERT_TRUE(overlap);
  EXPECT_EQ(*overlap, "piece 0 and piece 2 both hold element [1, 2]");
}

TEST(Tiling, PiecesOfTooManyRunsAreRefusedBeforeTheyAreEnumerated) {
  // Two columns of a tall tensor: one run per row each, 2 * rows in all.
  const auto columns_of = [](std::uint64_t rows) {
    return std::vector<PieceGeometry>{PieceGeometry::box({0, 0}, {rows, 1}), PieceGeometry::box({0, 1}, {rows, 1})};
  };
  const std::vector<PieceGeometry> at_limit = columns_of(max_tensor_runs / 2);
  EXPECT_FALSE(run_count_problem({&at_limit[0], &at_limit[1]}, {max_tensor_runs / 2, 2}));
  const std::vector<PieceGeometry> over = columns_of(max_tensor_runs / 2 + 1);
  const auto problem = run_count_problem({&over[0], &over[1]}, {max_tensor_runs / 2 + 1, 2});
  ASSERT_TRUE(problem);
  EXPECT_EQ(*problem,
            "expected the pieces to form at most 4194304 runs of consecutive elements (a box forms one per row it "
            "does not span whole), found 4194306");
  // What a hostile index can declare in a few bytes: counted, not enumerated.
  const std::uint64_t rows = 1'000'000'000'000;
  const std::vector<PieceGeometry> hostile = columns_of(rows);
  const auto hostile_problem = run_count_problem({&hostile[0], &hostile[1]}, {rows, 2});
  ASSERT_TRUE(hostile_problem);
  EXPECT_NE(hostile_problem->find("found 2000000000000"), std::string::npos) << *hostile_problem;
  // A count past 2^64 - 1 saturates rather than wrapping below the limit.
  const Shape huge{std::uint64_t(1) << 62, 2};
  const PieceGeometry left = PieceGeometry::box({0, 0}, {huge[0], 1});
  const auto saturated = run_count_problem({&left, &left, &left, &left, &left}, huge);
  ASSERT_TRUE(saturated);
  EXPECT_NE(saturated->find("found 18446744073709551615"), std::string::npos) << *saturated;
}

TEST(Split, EvenSplitsCoverTheExtentWithLongerFirstParts) {
  EXPECT_EQ(even_split(10, 4, 0).begin, 0u);
  EXPECT_EQ(even_split(10, 4, 0).count, 3u);
  EXPECT_EQ(even_split(10, 4, 1).begin, 3u);
  EXPECT_EQ(even_split(10, 4, 2).begin, 6u);
  EXPECT_EQ(even_split(10, 4, 2).count, 2u);
  EXPECT_EQ(even_split(10, 4, 3).begin + even_split(10, 4, 3).count, 10u);
  EXPECT_EQ(even_split(2, 4, 3).count, 0u) << "more parts than elements leaves some empty";
}

}  // namespace
}  // namespace ckpt::detail

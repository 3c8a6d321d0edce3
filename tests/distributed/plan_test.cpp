// The plan of a distributed save: agreement between ranks, one copy of each
// replicated piece, writers balanced by bytes, names in the files.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "support/expect_error.hpp"

namespace ckpt::detail {
namespace {

using ByRank = std::vector<std::vector<PieceDescription>>;

PieceDescription whole(const std::string& name, Shape shape, DType dtype = DType::F32) {
  return {name, dtype, shape, PieceGeometry::whole(shape)};
}
PieceDescription rows(const std::string& name, Shape shape, std::uint64_t begin, std::uint64_t count) {
  Shape offsets(shape.size(), 0), extents = shape;
  offsets[0] = begin;
  extents[0] = count;
  return {name, DType::F32, shape, PieceGeometry::box(offsets, extents)};
}

const TensorPlan& tensor_named(const SavePlan& plan, const std::string& name) {
  for (const TensorPlan& tensor : plan.tensors) {
    if (tensor.name == name) return tensor;
  }
  throw std::runtime_error("no tensor " + name);
}

TEST(SavePlan, ReplicatedPiecesAreWrittenOnceByOneOfTheirHolders) {
  const ByRank by_rank = {{whole("bias", {8}), rows("w", {4, 2}, 0, 2)},
                          {whole("bias", {8}), rows("w", {4, 2}, 2, 2)},
                          {whole("bias", {8}), rows("w", {4, 2}, 0, 2)}};  // rank 2 replicates rank 0's rows
  const SavePlan plan = make_save_plan(by_rank, "dir");
  const TensorPlan& bias = tensor_named(plan, "bias");
  ASSERT_EQ(bias.pieces.size(), 1u);
  EXPECT_EQ(bias.pieces[0].holders, (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(bias.pieces[0].stored_name, "bias") << "a whole tensor keeps its name";
  const TensorPlan& w = tensor_named(plan, "w");
  ASSERT_EQ(w.pieces.size(), 2u);
  EXPECT_EQ(w.pieces[0].holders, (std::vector<int>{0, 2}));
  EXPECT_EQ(w.pieces[0].stored_name, "w#0");
  EXPECT_EQ(w.pieces[1].stored_name, "w#1");
  EXPECT_EQ(w.pieces[1].writer, 1) << "rank 1 alone holds rows 2..3";
  // Every piece is written exactly once: the bytes add up to the tensors'.
  EXPECT_EQ(std::accumulate(plan.rank_bytes.begin(), plan.rank_bytes.end(), std::uint64_t{0}), (8 + 8) * 4u);
  EXPECT_EQ(plan.writers.size(), static_cast<std::size_t>(std::count_if(plan.rank_bytes.begin(), plan.rank_bytes.end(),
                                                                        [](auto b) { return b != 0; })));
}

TEST(SavePlan, FullyReplicatedStateIsBalancedWithinTenPercent) {
  // Data parallel: 4 ranks hold the same 24 tensors of mixed sizes.
  std::vector<PieceDescription> model;
  for (int i = 0; i < 24; ++i)
    model.push_back(whole("layer" + std::to_string(i), {std::uint64_t(64 + 37 * (i % 7)), 128}));
  const SavePlan plan = make_save_plan(ByRank(4, model), "dir");
  const std::uint64_t total = std::accumulate(plan.rank_bytes.begin(), plan.rank_bytes.end(), std::uint64_t{0});
  const double mean = static_cast<double>(total) / 4;
  for (std::uint64_t bytes : plan.rank_bytes) EXPECT_LE(static_cast<double>(bytes), 1.1 * mean);
  EXPECT_EQ(plan.writers.size(), 4u);
  EXPECT_EQ(plan.rank_files[3], "model-00004-of-00004.safetensors");
}

TEST(SavePlan, EveryRankComputesTheSamePlan) {
  const ByRank by_rank = {{whole("a", {3}), rows("w", {5, 1}, 0, 3)}, {rows("w", {5, 1}, 3, 2), whole("a", {3})}};
  const SavePlan first = make_save_plan(by_rank, "dir"), second = make_save_plan(by_rank, "dir");
  ASSERT_EQ(first.tensors.size(), second.tensors.size());
  for (std::size_t t = 0; t < first.tensors.size(); ++t) {
    for (std::size_t p = 0; p < first.tensors[t].pieces.size(); ++p) {
      EXPECT_EQ(first.tensors[t].pieces[p].writer, second.tensors[t].pieces[p].writer);
    }
  }
}

void expect_plan_error(const ByRank& by_rank, ErrorId id, const std::string& tensor, const std::string& text) {
  const auto error = test::expect_error<ArgumentError>([&] { make_save_plan(by_rank, "run/step-1"); }, id, {text});
  if (!error) return;
  EXPECT_EQ(error->file(), "run/step-1");
  EXPECT_EQ(error->tensor(), tensor);
}

TEST(SavePlan, RanksThatDisagreeOnATensorAreRefused) {
  expect_plan_error({{whole("w", {4, 4})}, {whole("w", {4, 5})}}, ErrorId::argument_invalid, "w",
                    "rank 0 describes F32 [4, 4], rank 1 describes F32 [4, 5]");
  expect_plan_error({{whole("w", {4})}, {whole("w", {4}, DType::F64)}}, ErrorId::argument_invalid, "w",
                    "rank 1 describes F64 [4]");
}

TEST(SavePlan, PiecesThatLeaveGapsOrOverlapAreRefused) {
  expect_plan_error({{rows("w", {6, 2}, 0, 2)}, {rows("w", {6, 2}, 4, 2)}}, ErrorId::argument_invalid, "w",
                    "do not tile it: elements [2, 0] to [3, 1] are held by no piece");
  expect_plan_error({{rows("w", {6, 2}, 0, 4)}, {rows("w", {6, 2}, 3, 3)}}, ErrorId::argument_invalid, "w",
                    "the piece of rank 0 (offsets [0, 0], extents [4, 2]) and the piece of rank 1 (offsets [3, 0], "
                    "extents [3, 2]) both hold element [3, 0]");
}

TEST(SavePlan, PiecesSplitIntoMoreRunsThanALoadAcceptsAreRefused) {
  // Two columns of 2^21 + 1 rows: one run per row each, two past the limit.
  const std::uint64_t rows = max_tensor_runs / 2 + 1;
  const auto column = [&](std::uint64_t c) {
    return PieceDescription{"w", DType::F32, {rows, 2}, PieceGeometry::box({0, c}, {rows, 1})};
  };
  expect_plan_error({{column(0)}, {column(1)}}, ErrorId::argument_invalid, "w",
                    "the ranks' pieces of F32 [2097153, 2] are split too finely: expected the pieces to form at most "
                    "4194304 runs of consecutive elements (a box forms one per row it does not span whole), found "
                    "4194306");
}

TEST(SavePlan, AStoredPieceNameThatCollidesWithATensorIsRefused) {
  expect_plan_error({{rows("w", {2, 2}, 0, 1), whole("w#1", {1})}, {rows("w", {2, 2}, 1, 1), whole("w#1", {1})}},
                    ErrorId::argument_duplicate_name, "w#1", "a piece of tensor 'w' is stored under this name");
}

TEST(SavePlan, EmptyPiecesAreDroppedButEmptyTensorsKept) {
  const ByRank by_rank = {{rows("w", {1, 3}, 0, 1), whole("none", {0, 4})},
                          {rows("w", {1, 3}, 1, 0), whole("none", {0, 4})}};
  const SavePlan plan = make_save_plan(by_rank, "dir");
  EXPECT_EQ(tensor_named(plan, "w").pieces.size(), 1u);
  EXPECT_EQ(tensor_named(plan, "w").pieces[0].stored_name, "w");
  ASSERT_EQ(tensor_named(plan, "none").pieces.size(), 1u);
  EXPECT_EQ(tensor_named(plan, "none").pieces[0].stored_name, "none");
}

TEST(SavePlan, DescriptionsCrossTheWireUnchanged) {
  const std::vector<PieceDescription> pieces = {rows("a/b", {300, 2}, 128, 172),
                                                {"z", DType::BF16, {1u << 20}, PieceGeometry::flat(70000, 5)}};
  WireWriter writer;
  encode_descriptions(writer, pieces);
  WireReader reader(writer.bytes());
  const std::vector<PieceDescription> decoded = decode_descriptions(reader);
  EXPECT_TRUE(reader.at_end());
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(decoded[0].name, "a/b");
  EXPECT_EQ(decoded[0].geometry, pieces[0].geometry);
  EXPECT_EQ(decoded[1].dtype, DType::BF16);
  EXPECT_EQ(decoded[1].geometry, pieces[1].geometry);
  WireReader truncated(std::string_view(writer.bytes()).substr(0, writer.bytes().size() - 1));
  EXPECT_THROW(decode_descriptions(truncated), StateError);
}

}  // namespace
}  // namespace ckpt::detail

// Distributed checkpoints in one process (SingleProcessCommunicator): the
// directory's layout, the commit, what a load refuses, codecs, async saves,
// and the helpers for checkpoint directories.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "support/expect_error.hpp"
#include "support/files.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

constexpr const char* index_name = "model.safetensors.index.json";
constexpr const char* only_file = "model-00001-of-00001.safetensors";

// A model with one weight that a load may take as a piece of its own.
struct Weights {
  std::vector<float> w;  // [rows, columns]
  std::vector<float> b;
  std::int64_t step = 0;
  Shape shape{6, 5};
  std::optional<Shape> offsets, extents;  // a piece instead of the whole weight

  template <class Archive>
  void describe(Archive& ar) {
    if (offsets) {
      ar("w", box_shard(w, shape, *offsets, *extents));
    } else {
      ar("w", shaped(w, shape));
    }
    ar("b", replicated(b))("step", step);
  }
};

Weights sample_weights() {
  Weights weights;
  for (int i = 0; i < 30; ++i) weights.w.push_back(static_cast<float>(i) * 0.5f);
  weights.b = {1.5f, -2.0f};
  weights.step = 7;
  return weights;
}

TEST(SingleProcess, SaveWritesOneRankFileAndTheIndexNothingElse) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  const DistributedSaveStats stats = checkpoint.save(temp.file("step-7"), 7, sample_weights());
  EXPECT_EQ(stats.rank_bytes, (30 + 2) * 4u);
  EXPECT_EQ(stats.checkpoint_bytes, stats.rank_bytes);
  EXPECT_GT(stats.file_bytes, stats.rank_bytes);
  const std::vector<std::string> expected{only_file, index_name};
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(temp.file("step-7")))
    names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, expected);
  // The rank file is an ordinary ckpt file; whole tensors keep their names.
  const Reader reader(temp.file("step-7/") + only_file);
  ASSERT_NE(reader.find("w"), nullptr);
  EXPECT_EQ(reader.find("w")->shape, (Shape{6, 5}));
  const DistributedIndex index = read_distributed_index(temp.file("step-7"));
  EXPECT_EQ(index.step, 7u);
  EXPECT_EQ(index.world_size, 1u);
  EXPECT_EQ(index.metadata.at("step"), 7);
  EXPECT_TRUE(is_committed_checkpoint(temp.file("step-7")));
}

TEST(SingleProcess, LoadsTheWholeStateOrAnyPieceOfIt) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  const Weights saved = sample_weights();
  checkpoint.save(temp.file("c"), 7, saved);

  Weights whole;
  checkpoint.load(temp.file("c"), whole);
  EXPECT_EQ(whole.w, saved.w);
  EXPECT_EQ(whole.b, saved.b);
  EXPECT_EQ(whole.step, 7);

  Weights piece;
  piece.offsets = Shape{1, 2};
  piece.extents = Shape{3, 2};
  checkpoint.load(temp.file("c"), piece);
  EXPECT_EQ(piece.w, (std::vector<float>{3.5f, 4.0f, 6.0f, 6.5f, 8.5f, 9.0f}));
}

TEST(SingleProcess, EncodedPiecesLoadByteRangesAcrossChunks) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedOptions options;
  options.save.codecs = CodecPolicy("shuffle+zstd");
  options.save.chunk_bytes = 64;  // 16 floats a chunk: every row spans chunk boundaries
  DistributedCheckpoint<Weights> checkpoint(world, options);
  Weights saved = sample_weights();
  saved.shape = {40, 30};
  saved.w.resize(1200);
  for (std::size_t i = 0; i < saved.w.size(); ++i) saved.w[i] = static_cast<float>(i % 97) - 3.25f;
  checkpoint.save(temp.file("c"), 1, saved);
  EXPECT_EQ(read_distributed_index(temp.file("c")).tensors.at("w").pieces.at(0).codec, "shuffle+zstd");

  Weights columns;
  columns.shape = saved.shape;
  columns.offsets = Shape{3, 7};
  columns.extents = Shape{31, 11};
  checkpoint.load(temp.file("c"), columns);
  ASSERT_EQ(columns.w.size(), 31u * 11u);
  for (std::uint64_t r = 0; r < 31; ++r) {
    for (std::uint64_t c = 0; c < 11; ++c) {
      ASSERT_EQ(columns.w[r * 11 + c], saved.w[(r + 3) * 30 + c + 7]) << "row " << r << " column " << c;
    }
  }
}

// A piece loaded by columns is read in small ranges (a row slice each):
// through one read_ranges of a raw piece, through windows of an encoded one.
// A damaged byte in the middle of the piece (between two row slices, in a
// block or chunk they read) fails the load with the file and tensor named,
// never loads wrong numbers; a load of rows whose blocks are intact still
// succeeds.
TEST(SingleProcess, ADamagedPieceReadInSmallRangesIsAnIntegrityErrorNamingFileAndTensor) {
  for (const std::string codec : {"raw", "shuffle+zstd"}) {
    SCOPED_TRACE(codec);
    TempDir temp;
    SingleProcessCommunicator world;
    DistributedOptions options;
    options.save.codecs = CodecPolicy(codec);
    options.save.chunk_bytes = 256;  // blocks and chunks of 64 floats: about 2 rows of 30
    DistributedCheckpoint<Weights> checkpoint(world, options);
    Weights saved = sample_weights();
    saved.shape = {40, 30};
    saved.w.resize(1200);
    for (std::size_t i = 0; i < saved.w.size(); ++i) saved.w[i] = static_cast<float>(i % 89) + 0.75f;
    checkpoint.save(temp.file("c"), 1, saved);
    const std::string file = temp.file("c/") + only_file;
    const TensorInfo stored = *Reader(file).find("w");
    std::string bytes = read_file(file);
    const std::uint64_t damaged = stored.file_offset + stored.stored_bytes / 2;
    bytes[damaged] = static_cast<char>(bytes[damaged] ^ 0x10);
    write_file(file, bytes);

    Weights columns;
    columns.shape = saved.shape;
    columns.offsets = Shape{0, 7};
    columns.extents = Shape{40, 11};
    expect_error<IntegrityError>([&] { checkpoint.load(temp.file("c"), columns); }, ErrorId::integrity_tensor_checksum,
                                 {"file '" + file + "'", "tensor 'w'", "checksum mismatch", "expected xxh3"});

    Weights first_rows;
    first_rows.shape = saved.shape;
    first_rows.offsets = Shape{0, 7};
    first_rows.extents = Shape{8, 11};  // rows 0-7: blocks far from the damage, in row 20
    checkpoint.load(temp.file("c"), first_rows);
    for (std::uint64_t r = 0; r < 8; ++r) {
      for (std::uint64_t c = 0; c < 11; ++c) ASSERT_EQ(first_rows.w[r * 11 + c], saved.w[r * 30 + c + 7]);
    }
  }
}

TEST(SingleProcess, ADirectoryWithoutIndexIsNeverLoaded) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  checkpoint.save(temp.file("c"), 7, sample_weights());
  std::filesystem::remove(temp.file("c/") + index_name);  // what a save killed before its commit leaves
  Weights state;
  expect_error<StateError>(
      [&] { checkpoint.load(temp.file("c"), state); }, ErrorId::state_uncommitted,
      {"expected model.safetensors.index.json, found none: the save that wrote this directory never "
       "committed"});
  EXPECT_TRUE(state.w.empty()) << "nothing was loaded";
  EXPECT_TRUE(is_uncommitted_checkpoint(temp.file("c")));
  expect_error<StateError>([&] { checkpoint.load(temp.file("missing"), state); }, ErrorId::state_not_found,
                           {"expected a checkpoint directory, found none"});
}

TEST(SingleProcess, TheNextSaveRemovesWhatAnUncommittedSaveLeft) {
  TempDir temp;
  const std::string directory = temp.file("c");
  std::filesystem::create_directories(directory);
  // An earlier save of 4 ranks, killed: files, a temp file, no index; and a file of the user's.
  write_file(directory + "/model-00003-of-00004.safetensors", "partial");
  write_file(directory + "/.model-00001-of-00004.safetensors.tmp-12-0-99", "partial");
  write_file(directory + "/.model.safetensors.index.json.tmp-12-1-99", "{");
  write_file(directory + "/notes.txt", "mine");
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  checkpoint.save(directory, 7, sample_weights());
  std::vector<std::string> names;
  for (const auto& item : std::filesystem::directory_iterator(directory)) names.push_back(item.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{only_file, index_name, "notes.txt"}));
}

TEST(SingleProcess, ACommittedCheckpointIsReplacedOnlyWhenAsked) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  checkpoint.save(temp.file("c"), 7, sample_weights());
  Weights changed = sample_weights();
  changed.step = 8;
  expect_error<StateError>([&] { checkpoint.save(temp.file("c"), 8, changed); }, ErrorId::state_exists,
                           {"a committed checkpoint is already in this directory"});
  EXPECT_EQ(read_distributed_index(temp.file("c")).step, 7u) << "the refused save changed nothing";
  DistributedOptions options;
  options.overwrite = true;
  DistributedCheckpoint<Weights>(world, options).save(temp.file("c"), 8, changed);
  EXPECT_EQ(read_distributed_index(temp.file("c")).step, 8u);
}

// Describes "w" with the wrong dtype and "b" with the wrong global shape.
struct Wrong {
  std::vector<double> w;
  std::vector<float> b;
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", box_shard(w, {6, 5}, {0, 0}, {3, 5}))("b", box_shard(b, {3}, {0}, {3}));
  }
};

TEST(SingleProcess, AStateThatDoesNotMatchIsRefusedNamingTensorExpectedAndFound) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights>(world).save(temp.file("c"), 7, sample_weights());
  Wrong state;
  try {
    DistributedCheckpoint<Wrong>(world).load(temp.file("c"), state);
    FAIL() << "expected MismatchError";
  } catch (const MismatchError& error) {
    EXPECT_EQ(error.id(), ErrorId::mismatch_state);
    const std::string message = error.what();
    EXPECT_NE(message.find("w: expected F64, found F32"), std::string::npos) << message;
    EXPECT_NE(message.find("b: expected [3], found [2]"), std::string::npos) << message;
    EXPECT_NE(message.find("rank 0 of 1"), std::string::npos) << message;
  }
  EXPECT_TRUE(state.w.empty() && state.b.empty()) << "a strict load loads nothing when anything mismatches";
}

// A box that does not fit in its tensor.
struct Outside {
  std::vector<float> w = std::vector<float>(6);
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", box_shard(w, {4, 3}, {3, 0}, {2, 3}));
  }
};

TEST(SingleProcess, AShardOutsideItsTensorIsTheCallersError) {
  TempDir temp;
  SingleProcessCommunicator world;
  try {
    DistributedCheckpoint<Outside>(world).save(temp.file("c"), 1, Outside{});
    FAIL() << "expected ArgumentError";
  } catch (const ArgumentError& error) {
    EXPECT_EQ(error.tensor(), "w");
    EXPECT_NE(std::string(error.what()).find("expected a box within the global shape [4, 3]"), std::string::npos)
        << error.what();
  }
  EXPECT_FALSE(is_committed_checkpoint(temp.file("c")));
}

TEST(SingleProcess, AsyncSaveCommitsInTheBackgroundFromACopy) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedOptions options;
  options.async = true;
  DistributedCheckpoint<Weights> checkpoint(world, options);
  Weights state = sample_weights();
  const DistributedSaveStats started = checkpoint.save(temp.file("c"), 7, state);
  EXPECT_TRUE(started.async);
  std::fill(state.w.begin(), state.w.end(), -1.0f);  // the save must not see this
  const DistributedSaveStats done = checkpoint.wait();
  EXPECT_EQ(done.rank_bytes, (30 + 2) * 4u);
  EXPECT_GE(done.seconds, done.blocked_seconds);
  Weights loaded;
  checkpoint.load(temp.file("c"), loaded);
  EXPECT_EQ(loaded.w, sample_weights().w);
}

TEST(SingleProcess, ToolsLoadEveryTensorWholeIntoAMap) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<SampleState>(world).save(temp.file("c"), 3, sample_for_saving(0, 1, 3));
  std::map<std::string, Tensor> tensors;
  DistributedCheckpoint<std::map<std::string, Tensor>>(world).load(temp.file("c"), tensors);
  EXPECT_EQ(tensors.size(), sample_tensors().size());
  EXPECT_EQ(tensors.at("layers/0/rows").shape(), (Shape{13, 7}));
  EXPECT_EQ(tensors.at("embedding/replicated").dtype(), DType::BF16);
}

TEST(SingleProcess, CommittedCheckpointsAreListedByStepAndRemovedIndexFirst) {
  TempDir temp;
  SingleProcessCommunicator world;
  DistributedCheckpoint<Weights> checkpoint(world);
  checkpoint.save(temp.file("step-20"), 20, sample_weights());
  checkpoint.save(temp.file("step-10"), 10, sample_weights());
  checkpoint.save(temp.file("step-30"), 30, sample_weights());
  std::filesystem::remove(temp.file("step-30/") + index_name);
  const std::vector<CommittedCheckpoint> listed = committed_checkpoints(temp.path());
  ASSERT_EQ(listed.size(), 2u);
  EXPECT_EQ(listed[0].step, 10u);
  EXPECT_EQ(listed[1].directory, temp.file("step-20"));
  remove_distributed_checkpoint(temp.file("step-10"));
  EXPECT_FALSE(std::filesystem::exists(temp.file("step-10")));
  remove_distributed_checkpoint(temp.file("step-30"));
  EXPECT_FALSE(std::filesystem::exists(temp.file("step-30")));
}

}  // namespace
}  // namespace ckpt::test

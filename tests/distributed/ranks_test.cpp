// Distributed saves and loads among several ranks of one process (threads,
// see thread_communicator.hpp): every world size saving, every world size
// loading under another split; one rank's failure failing every rank; the
// writes of replicated data balanced; asynchronous commits.

#include <algorithm>
#include <exception>
#include <filesystem>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "distributed/thread_communicator.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

void save_sample(const std::string& directory, int world, std::uint64_t step, DistributedOptions options = {},
                 bool background = true) {
  const auto failures = run_ranks(
      world,
      [&](Communicator& communicator) {
        DistributedCheckpoint<SampleState> checkpoint(communicator, options);
        checkpoint.save(directory, step, sample_for_saving(communicator.rank(), world, step));
        checkpoint.wait();
      },
      background);
  for (int rank = 0; rank < world; ++rank) {
    if (failures[rank]) std::rethrow_exception(failures[rank]);
  }
}

// Loads with `world` ranks under the loading split; returns each rank's problems.
std::vector<std::string> load_sample(const std::string& directory, int world, std::uint64_t step) {
  std::vector<std::string> problems;
  std::mutex mutex;
  const auto failures = run_ranks(world, [&](Communicator& communicator) {
    SampleState state = sample_for_loading(communicator.rank(), world);
    DistributedCheckpoint<SampleState>(communicator).load(directory, state);
    std::vector<std::string> mine = sample_differences(state);
    if (state.step != step) mine.push_back("step " + std::to_string(state.step));
    std::lock_guard<std::mutex> lock(mutex);
    for (const std::string& problem : mine)
      problems.push_back("rank " + std::to_string(communicator.rank()) + ": " + problem);
  });
  for (int rank = 0; rank < world; ++rank) {
    if (failures[rank]) std::rethrow_exception(failures[rank]);
  }
  return problems;
}

TEST(Ranks, SavedByOneToFourRanksLoadedByOneToFourUnderAnotherSplit) {
  TempDir temp;
  for (int saving = 1; saving <= 4; ++saving) {
    const std::string directory = temp.file("saved-by-" + std::to_string(saving));
    save_sample(directory, saving, 100 + saving);
    const DistributedIndex index = read_distributed_index(directory);
    EXPECT_EQ(index.world_size, static_cast<std::uint64_t>(saving));
    for (int loading = 1; loading <= 4; ++loading) {
      SCOPED_TRACE("saved by " + std::to_string(saving) + ", loaded by " + std::to_string(loading));
      EXPECT_EQ(load_sample(directory, loading, 100 + saving), std::vector<std::string>());
    }
  }
}

TEST(Ranks, EncodedFilesReshardToo) {
  TempDir temp;
  DistributedOptions options;
  options.save.codecs = CodecPolicy("zstd");
  options.save.chunk_bytes = 16;
  save_sample(temp.file("c"), 3, 5, options);
  EXPECT_EQ(read_distributed_index(temp.file("c")).tensors.at("layers/0/rows").pieces.at(0).codec, "zstd");
  EXPECT_EQ(load_sample(temp.file("c"), 2, 5), std::vector<std::string>());
}

struct Replicated {
  std::vector<std::vector<float>> layers;
  template <class Archive>
  void describe(Archive& ar) {
    ar("layers", layers);
  }
};

TEST(Ranks, ReplicatedWritesAreBalancedAndNoPieceIsWrittenTwice) {
  TempDir temp;
  // Data parallel: every rank holds the same 16 tensors of different sizes.
  Replicated model;
  for (int i = 0; i < 16; ++i) model.layers.emplace_back(1000 + 300 * (i % 5), static_cast<float>(i));
  std::vector<DistributedSaveStats> stats(4);
  const auto failures = run_ranks(4, [&](Communicator& communicator) {
    stats[communicator.rank()] = DistributedCheckpoint<Replicated>(communicator).save(temp.file("c"), 1, model);
  });
  for (const auto& failure : failures) ASSERT_FALSE(failure);
  std::uint64_t total = 0;
  for (const DistributedSaveStats& rank : stats) total += rank.rank_bytes;
  EXPECT_EQ(total, stats[0].checkpoint_bytes) << "each piece written once";
  std::uint64_t model_bytes = 0;
  for (const auto& layer : model.layers) model_bytes += layer.size() * sizeof(float);
  EXPECT_EQ(total, model_bytes);
  for (const DistributedSaveStats& rank : stats) EXPECT_LE(rank.rank_bytes, 1.1 * total / 4.0);
}

// Every rank's exception, checked to be `Kind` with `id` and a message
// containing `text`.
template <class Kind>
void expect_every_rank_threw(const std::vector<std::exception_ptr>& failures, ErrorId id, const std::string& text) {
  for (std::size_t rank = 0; rank < failures.size(); ++rank) {
    SCOPED_TRACE("rank " + std::to_string(rank));
    ASSERT_TRUE(failures[rank]) << "this rank returned as if the save had succeeded";
    expect_error<Kind>([&] { std::rethrow_exception(failures[rank]); }, id, {text});
  }
}

TEST(Ranks, AnExceptionInOneRanksDescribeFailsTheSaveOnEveryRank) {
  TempDir temp;
  const auto failures = run_ranks(3, [&](Communicator& communicator) {
    SampleState state = sample_for_saving(communicator.rank(), 3, 1);
    if (communicator.rank() == 1) state.on_describe = [] { throw std::runtime_error("describe() failed on purpose"); };
    DistributedCheckpoint<SampleState>(communicator).save(temp.file("c"), 1, state);
  });
  expect_every_rank_threw<StateError>(failures, ErrorId::state_rank_failed,
                                      "rank 1 of 3 failed: describe() failed on purpose");
  EXPECT_FALSE(is_committed_checkpoint(temp.file("c")));
}

TEST(Ranks, ADiskFullOnOneRankFailsTheSaveEverywhereAndCommitsNothing) {
  TempDir temp;
  save_sample(temp.file("step-1"), 3, 1);
  FaultFileSystem file_system;
  std::vector<std::exception_ptr> failures;
  {
    ScopedFileSystem scoped(file_system);
    failures = run_ranks(3, [&](Communicator& communicator) {
      if (communicator.rank() == 2) file_system.fill_disk_of_this_thread();  // rank 2's disk
      DistributedCheckpoint<SampleState>(communicator)
          .save(temp.file("step-2"), 2, sample_for_saving(communicator.rank(), 3, 2));
    });
  }
  expect_every_rank_threw<IoError>(failures, ErrorId::io_no_space, "rank 2 of 3: the disk is full");
  EXPECT_FALSE(is_committed_checkpoint(temp.file("step-2")));
  EXPECT_FALSE(is_uncommitted_checkpoint(temp.file("step-2"))) << "every rank removed the file it wrote";
  EXPECT_EQ(load_sample(temp.file("step-1"), 2, 1), std::vector<std::string>()) << "the previous checkpoint is intact";
}

struct Rows {
  int rank = 0;
  std::uint64_t columns = 7;
  std::vector<float> rows = std::vector<float>(6 * 7, 1.0f);
  template <class Archive>
  void describe(Archive& ar) {
    ar("rows", box_shard(rows, {12, columns}, {std::uint64_t(rank) * 6, 0}, {6, columns}));
  }
};

TEST(Ranks, OneRankWithTheWrongShapeFailsTheLoadOnEveryRank) {
  TempDir temp;
  const auto saved = run_ranks(2, [&](Communicator& communicator) {
    Rows state;
    state.rank = communicator.rank();
    DistributedCheckpoint<Rows>(communicator).save(temp.file("c"), 1, state);
  });
  for (const auto& failure : saved) ASSERT_FALSE(failure);
  std::vector<Rows> states(2);
  const auto failures = run_ranks(2, [&](Communicator& communicator) {
    Rows& state = states[communicator.rank()];
    state.rank = communicator.rank();
    state.columns = communicator.rank() == 1 ? 8 : 7;  // rank 1 believes in another model
    state.rows.clear();
    DistributedCheckpoint<Rows>(communicator).load(temp.file("c"), state);
  });
  for (const Rows& state : states)
    EXPECT_TRUE(state.rows.empty()) << "no rank loads anything when one rank's state does not match";
  expect_every_rank_threw<MismatchError>(failures, ErrorId::mismatch_state,
                                         "rank 1 of 2: the checkpoint does not match the state (1 problem)\n  wrong "
                                         "shape:\n    rows: expected [12, 8], found [12, 7]");
}

// Each rank fsyncs its file once written (docs/distributed.md), so, as in a
// durable single-file save, the file's bytes are sent to disk as they are
// written rather than all at that fsync.
TEST(Ranks, EachRankSendsItsFileToDiskAsItWritesIt) {
  TempDir temp;
  FaultFileSystem file_system;
  std::vector<std::exception_ptr> failures;
  {
    ScopedFileSystem scoped(file_system);
    failures = run_ranks(2, [&](Communicator& communicator) {
      Rows state;
      state.rank = communicator.rank();
      state.columns = std::uint64_t(1) << 19;  // 12 MiB a rank
      state.rows.assign(6 * state.columns, 0.5f);
      DistributedCheckpoint<Rows>(communicator).save(temp.file("c"), 1, state);
    });
  }
  for (const auto& failure : failures) ASSERT_FALSE(failure);
  std::set<std::string> sent;
  for (const FsCall& call : file_system.trace()) {
    if (call.op == FsOp::writeback) sent.insert(detail::file_name_of(call.path));
  }
  for (const char* rank_file : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"}) {
    EXPECT_TRUE(std::any_of(sent.begin(), sent.end(),
                            [&](const std::string& name) { return name.find(rank_file) != std::string::npos; }))
        << rank_file << " was never sent to disk before its fsync";
  }
}

TEST(Ranks, AsyncSavesCommitInTheBackgroundOrAtTheNextCall) {
  TempDir temp;
  DistributedOptions options;
  options.async = true;
  for (bool background : {true, false}) {
    SCOPED_TRACE(background ? "background collectives" : "commit at the next call");
    const std::string first = temp.file(background ? "b1" : "n1"), second = temp.file(background ? "b2" : "n2");
    const auto failures = run_ranks(
        3,
        [&](Communicator& communicator) {
          DistributedCheckpoint<SampleState> checkpoint(communicator, options);
          checkpoint.save(first, 1, sample_for_saving(communicator.rank(), 3, 1));
          // The second save completes the first one before planning its own.
          checkpoint.save(second, 2, sample_for_saving(communicator.rank(), 3, 2));
          EXPECT_TRUE(is_committed_checkpoint(first));
          const DistributedSaveStats stats = checkpoint.wait();
          EXPECT_EQ(stats.step, 2u);
        },
        background);
    for (const auto& failure : failures) ASSERT_FALSE(failure);
    EXPECT_EQ(load_sample(first, 2, 1), std::vector<std::string>());
    EXPECT_EQ(load_sample(second, 4, 2), std::vector<std::string>());
  }
}

}  // namespace
}  // namespace ckpt::test

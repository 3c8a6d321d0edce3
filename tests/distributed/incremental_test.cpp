// Incremental distributed checkpoints (docs/distributed.md, "Incremental
// checkpoints") among ranks on threads: a chain of saves whose frozen boxes
// are referenced, partly changed tensors referenced box by box, new tensors
// stored, changed ones stored as xor-deltas against the parent's piece of the
// same box; every checkpoint of the chain loaded bit-exactly by 1 to 4 ranks
// under another split; the chain policy; a damaged parent failing the load
// with the parent's file named; and a manager's retention over a chain.

#include <algorithm>
#include <cstdint>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/distributed.hpp"
#include "distributed/sample_state.hpp"
#include "distributed/thread_communicator.hpp"
#include "support/crash_states.hpp"
#include "support/expect_error.hpp"
#include "support/fault_fs.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

// A tensor of the chain state and the version of each element's content at
// a step: 0 stays the same forever.
struct ChainTensor {
  const char* name;
  DType dtype;
  Shape shape;
  Layout saved;
  Layout loaded;
  std::uint64_t first_step;                                             // absent before it
  std::uint64_t (*version)(std::uint64_t step, std::uint64_t element);  // content version of an element
};

std::uint64_t frozen(std::uint64_t, std::uint64_t) { return 0; }
std::uint64_t every_step(std::uint64_t step, std::uint64_t) { return step; }
// The first 30 of 60 elements (the first two of four row blocks) change.
std::uint64_t first_half(std::uint64_t step, std::uint64_t element) { return element < 30 ? step : 0; }

const std::vector<ChainTensor>& chain_tensors() {
  static const std::vector<ChainTensor> tensors = {
      {"frozen/rows", DType::F32, {12, 5}, Layout::rows, Layout::columns, 1, frozen},
      {"partly/rows", DType::F32, {12, 5}, Layout::rows, Layout::columns, 1, first_half},
      {"frozen/flat", DType::I32, {5, 3, 2}, Layout::flat, Layout::blocks, 1, frozen},
      {"moving/replicated", DType::F64, {7}, Layout::whole, Layout::rows, 1, every_step},
      {"frozen/replicated", DType::BF16, {4, 4}, Layout::whole, Layout::rows, 1, frozen},
      {"new/rows", DType::U8, {9}, Layout::rows, Layout::whole, 2, frozen},
  };
  return tensors;
}

std::byte chain_byte(const ChainTensor& tensor, std::uint64_t step, std::uint64_t element, std::size_t byte) {
  return std::byte{sample_byte(tensor.name, tensor.dtype, element * 7 + tensor.version(step, element) * 1009, byte)};
}

struct ChainState {
  int rank = 0;
  int world = 1;
  bool loading = false;
  std::uint64_t step = 0;  // the step whose tensors the state has
  std::map<std::string, Tensor> locals;

  detail::PieceGeometry piece(const ChainTensor& tensor) const {
    return sample_piece(loading ? tensor.loaded : tensor.saved, tensor.shape, rank, world);
  }

  template <class Archive>
  void describe(Archive& ar) {
    for (const ChainTensor& tensor : chain_tensors()) {
      if (step < tensor.first_step) continue;
      Tensor& local = locals[tensor.name];
      const detail::PieceGeometry geometry = piece(tensor);
      if ((loading ? tensor.loaded : tensor.saved) == Layout::whole) {
        ar(tensor.name, replicated(local));
      } else if (geometry.kind == detail::PieceGeometry::Kind::flat) {
        ar(tensor.name, flat_shard(local, tensor.shape, geometry.offsets[0], geometry.extents[0]));
      } else {
        ar(tensor.name, box_shard(local, tensor.shape, geometry.offsets, geometry.extents));
      }
    }
    ar("step", step);
  }
};

ChainState state_for_saving(int rank, int world, std::uint64_t step) {
  ChainState state{rank, world, false, step, {}};
  for (const ChainTensor& tensor : chain_tensors()) {
    if (step < tensor.first_step) continue;
    const detail::PieceGeometry geometry = state.piece(tensor);
    Tensor local = Tensor::allocate(tensor.dtype, geometry.stored_shape(tensor.shape));
    const std::size_t size = dtype_size(tensor.dtype);
    for_each_element(geometry, tensor.shape, [&](std::uint64_t position, std::uint64_t global) {
      for (std::size_t byte = 0; byte < size; ++byte)
        local.mutable_data()[position * size + byte] = chain_byte(tensor, step, global, byte);
    });
    state.locals[tensor.name] = std::move(local);
  }
  return state;
}

// What differs between a loaded state and step `step`'s content.
std::vector<std::string> chain_differences(const ChainState& state) {
  std::vector<std::string> problems;
  for (const ChainTensor& tensor : chain_tensors()) {
    if (state.step < tensor.first_step) continue;
    const detail::PieceGeometry geometry = state.piece(tensor);
    const Tensor& local = state.locals.at(tensor.name);
    if (local.shape() != geometry.stored_shape(tensor.shape)) {
      problems.push_back(std::string(tensor.name) + ": shape " + shape_to_string(local.shape()));
      continue;
    }
    const std::size_t size = dtype_size(tensor.dtype);
    std::uint64_t wrong = 0;
    for_each_element(geometry, tensor.shape, [&](std::uint64_t position, std::uint64_t global) {
      for (std::size_t byte = 0; byte < size; ++byte)
        wrong += local.data()[position * size + byte] != chain_byte(tensor, state.step, global, byte);
    });
    if (wrong != 0) problems.push_back(std::string(tensor.name) + ": " + std::to_string(wrong) + " wrong bytes");
  }
  return problems;
}

void rethrow_first(const std::vector<std::exception_ptr>& failures) {
  for (const std::exception_ptr& failure : failures) {
    if (failure) std::rethrow_exception(failure);
  }
}

// Saves step `step` with `world` ranks against `parent` (empty: a full save
// that records content hashes); returns rank 0's figures.
DistributedSaveStats save_step(const std::string& directory, int world, std::uint64_t step, const std::string& parent,
                               IncrementalOptions incremental = {}) {
  DistributedSaveStats stats;
  incremental.parent = parent;
  incremental.content_hashes = true;
  rethrow_first(run_ranks(world, [&](Communicator& communicator) {
    DistributedOptions options;
    options.save.incremental = incremental;
    options.save.threads = 1;
    DistributedCheckpoint<ChainState> checkpoint(communicator, options);
    const DistributedSaveStats mine =
        checkpoint.save(directory, step, state_for_saving(communicator.rank(), world, step));
    if (communicator.rank() == 0) stats = mine;
  }));
  return stats;
}

// Loads with `world` ranks under the loading split; each rank's problems.
std::vector<std::string> load_step(const std::string& directory, int world, std::uint64_t step) {
  std::vector<std::string> problems;
  std::mutex mutex;
  rethrow_first(run_ranks(world, [&](Communicator& communicator) {
    ChainState state{communicator.rank(), world, true, step, {}};
    DistributedCheckpoint<ChainState>(communicator).load(directory, state);
    std::vector<std::string> mine = chain_differences(state);
    std::lock_guard<std::mutex> lock(mutex);
    for (const std::string& problem : mine)
      problems.push_back("rank " + std::to_string(communicator.rank()) + ": " + problem);
  }));
  return problems;
}

// How many pieces of `tensor` the checkpoint references.
std::size_t referenced_pieces(const DistributedIndex& index, const std::string& tensor) {
  std::size_t count = 0;
  for (const auto& piece : index.tensors.at(tensor).pieces) count += piece.referenced();
  return count;
}

TEST(IncrementalDistributed, ChainOfSavesReferencesUnchangedBoxesAndLoadsUnderAnySplit) {
  TempDir temp;
  const std::string s1 = temp.file("step-1"), s2 = temp.file("step-2"), s3 = temp.file("step-3");
  const DistributedSaveStats full = save_step(s1, 4, 1, "");
  EXPECT_EQ(full.referenced_bytes, 0u);
  EXPECT_FALSE(read_distributed_index(s1).chain.has_value());

  const DistributedSaveStats second = save_step(s2, 4, 2, s1);
  const DistributedIndex index2 = read_distributed_index(s2);
  ASSERT_TRUE(index2.chain.has_value());
  EXPECT_EQ(index2.chain->parent, "../step-1");
  EXPECT_EQ(index2.chain->depth, 1u);
  EXPECT_EQ(index2.chain->sources, std::vector<std::string>{"../step-1"});
  EXPECT_EQ(referenced_pieces(index2, "frozen/rows"), 4u);
  EXPECT_EQ(referenced_pieces(index2, "partly/rows"), 2u);  // the two boxes of unchanged rows
  EXPECT_EQ(referenced_pieces(index2, "frozen/flat"), 4u);
  EXPECT_EQ(referenced_pieces(index2, "frozen/replicated"), 1u);
  EXPECT_EQ(referenced_pieces(index2, "moving/replicated"), 0u);
  EXPECT_EQ(referenced_pieces(index2, "new/rows"), 0u);
  // Stored: the changed half of partly/rows, moving/replicated and new/rows.
  EXPECT_EQ(index2.chain->chain_bytes, 30u * 4 + 7u * 8 + 9u);
  // Rank 0 writes the first row block of each row tensor and the flat range's first quarter.
  EXPECT_GT(second.referenced_bytes, 0u);

  save_step(s3, 4, 3, s2);
  const DistributedIndex index3 = read_distributed_index(s3);
  ASSERT_TRUE(index3.chain.has_value());
  EXPECT_EQ(index3.chain->depth, 2u);
  // Frozen boxes are read from step 1's files directly, new/rows from step 2's.
  EXPECT_EQ(index3.chain->sources, (std::vector<std::string>{"../step-1", "../step-2"}));
  EXPECT_EQ(referenced_pieces(index3, "new/rows"), 4u);
  EXPECT_EQ(referenced_pieces(index3, "partly/rows"), 2u);

  for (int loading = 1; loading <= 4; ++loading) {
    SCOPED_TRACE("loaded by " + std::to_string(loading) + " ranks");
    EXPECT_EQ(load_step(s1, loading, 1), std::vector<std::string>());
    EXPECT_EQ(load_step(s2, loading, 2), std::vector<std::string>());
    EXPECT_EQ(load_step(s3, loading, 3), std::vector<std::string>());
  }
}

TEST(IncrementalDistributed, AnotherWorldSizeReferencesTheBoxesItShares) {
  TempDir temp;
  save_step(temp.file("a"), 4, 1, "");
  save_step(temp.file("b"), 2, 2, temp.file("a"));
  const DistributedIndex index = read_distributed_index(temp.file("b"));
  // Rows split in 2 are no box of a split in 4; the replicated tensor is the same box.
  EXPECT_EQ(referenced_pieces(index, "frozen/rows"), 0u);
  EXPECT_EQ(referenced_pieces(index, "frozen/replicated"), 1u);
  for (int loading = 1; loading <= 3; ++loading)
    EXPECT_EQ(load_step(temp.file("b"), loading, 2), std::vector<std::string>());
}

TEST(IncrementalDistributed, ChainPolicyStartsAFullCheckpoint) {
  TempDir temp;
  IncrementalOptions every_second;
  every_second.full_every = 2;
  save_step(temp.file("1"), 3, 1, "", every_second);
  save_step(temp.file("2"), 3, 2, temp.file("1"), every_second);
  save_step(temp.file("3"), 3, 3, temp.file("2"), every_second);
  EXPECT_TRUE(read_distributed_index(temp.file("2")).chain.has_value());
  EXPECT_FALSE(read_distributed_index(temp.file("3")).chain.has_value());  // depth 2 reaches full_every
  IncrementalOptions small_chain;
  small_chain.max_chain_fraction = 0.01;  // any stored byte is too many
  save_step(temp.file("4"), 3, 4, temp.file("3"), small_chain);
  EXPECT_FALSE(read_distributed_index(temp.file("4")).chain.has_value());
  EXPECT_EQ(load_step(temp.file("4"), 2, 4), std::vector<std::string>());
}

// Flips a byte of the stored bytes of `tensor` in `file`.
void damage_tensor(const std::string& file, const std::string& tensor) {
  const Reader reader(file);
  const std::uint64_t offset = reader.find(tensor)->file_offset;
  std::fstream stream(file, std::ios::in | std::ios::out | std::ios::binary);
  stream.seekg(static_cast<std::streamoff>(offset));
  char byte = 0;
  stream.read(&byte, 1);
  byte = static_cast<char>(byte ^ 0x40);
  stream.seekp(static_cast<std::streamoff>(offset));
  stream.write(&byte, 1);
}

TEST(IncrementalDistributed, DamagedParentFailsTheLoadNamingTheParentFile) {
  TempDir temp;
  save_step(temp.file("step-1"), 2, 1, "");
  save_step(temp.file("step-2"), 2, 2, temp.file("step-1"));
  // frozen/rows' first box is stored in one file of step 1 only; step 2 references it.
  const detail::IndexPiece box = read_distributed_index(temp.file("step-1")).tensors.at("frozen/rows").pieces.at(0);
  ASSERT_TRUE(read_distributed_index(temp.file("step-2")).tensors.at("frozen/rows").pieces.at(0).referenced());
  damage_tensor(temp.file("step-1") + "/" + box.file, box.stored_name);
  expect_error<IntegrityError>([&] { load_step(temp.file("step-2"), 1, 2); }, ErrorId::integrity_tensor_checksum,
                               {"step-1/" + box.file, box.stored_name});
}

TEST(IncrementalDistributed, ParentMayNotBeTheSavedDirectory) {
  TempDir temp;
  save_step(temp.file("a"), 1, 1, "");
  expect_error<ArgumentError>([&] { save_step(temp.file("b"), 2, 2, temp.file("b")); }, ErrorId::argument_invalid,
                              {"expected a parent checkpoint other than the directory being saved"});
  expect_error<StateError>([&] { save_step(temp.file("d"), 2, 2, temp.file("missing")); }, ErrorId::state_not_found,
                           {"missing", "expected a checkpoint directory"});
}

IncrementalOptions with_xor_delta() {
  IncrementalOptions options;
  options.xor_delta = true;
  return options;
}

// The codec the index records for each piece of `tensor`, in its order.
std::vector<std::string> piece_codecs(const DistributedIndex& index, const std::string& tensor) {
  std::vector<std::string> codecs;
  for (const auto& piece : index.tensors.at(tensor).pieces) codecs.push_back(piece.codec);
  return codecs;
}

// The files of `directory` that the rank file holding `tensor`'s piece
// `piece` reads from (its chain's sources, relative to it).
std::vector<std::string> sources_of_piece_file(const std::string& directory, const std::string& tensor,
                                               std::size_t piece) {
  const detail::IndexPiece found = read_distributed_index(directory).tensors.at(tensor).pieces.at(piece);
  return Reader(directory + "/" + found.file).source_files();
}

// xor-delta: each changed piece whose box the parent holds is stored as the
// XOR against the parent's piece; unchanged ones are referenced, new ones
// stored by their codec. A chain of four saves, each loaded bit-exactly by 1
// to 4 ranks under another split, and verified as `ckpt verify` does.
TEST(IncrementalDistributed, XorDeltaStoresChangedBoxesAgainstTheParentsPieces) {
  TempDir temp;
  const auto step_dir = [&](std::uint64_t step) { return temp.file("step-" + std::to_string(step)); };
  save_step(step_dir(1), 4, 1, "", with_xor_delta());
  EXPECT_FALSE(read_distributed_index(step_dir(1)).chain.has_value());
  for (std::uint64_t step = 2; step <= 4; ++step)
    save_step(step_dir(step), 4, step, step_dir(step - 1), with_xor_delta());

  const DistributedIndex index2 = read_distributed_index(step_dir(2));
  ASSERT_TRUE(index2.chain.has_value());
  EXPECT_EQ(index2.chain->depth, 1u);
  EXPECT_EQ(index2.chain->sources, std::vector<std::string>{"../step-1"});
  // The two changed row blocks are xor-deltas, the two unchanged ones references.
  EXPECT_EQ(piece_codecs(index2, "partly/rows"),
            (std::vector<std::string>{"xor-delta", "xor-delta", "reference", "reference"}));
  EXPECT_EQ(piece_codecs(index2, "moving/replicated"), std::vector<std::string>{"xor-delta"});
  EXPECT_EQ(piece_codecs(index2, "new/rows"), (std::vector<std::string>(4, "raw")));  // no parent piece
  EXPECT_EQ(referenced_pieces(index2, "frozen/rows"), 4u);
  // Delta pieces count as stored, as in a single file's chain.
  EXPECT_EQ(index2.chain->chain_bytes, 30u * 4 + 7u * 8 + 9u);
  // The first row block's base is in step 1's file holding that block.
  const detail::IndexPiece base = read_distributed_index(step_dir(1)).tensors.at("partly/rows").pieces.at(0);
  EXPECT_EQ(sources_of_piece_file(step_dir(2), "partly/rows", 0), std::vector<std::string>{"../step-1/" + base.file});

  const DistributedIndex index4 = read_distributed_index(step_dir(4));
  ASSERT_TRUE(index4.chain.has_value());
  EXPECT_EQ(index4.chain->depth, 3u);
  EXPECT_EQ(piece_codecs(index4, "moving/replicated"), std::vector<std::string>{"xor-delta"});
  EXPECT_EQ(referenced_pieces(index4, "new/rows"), 4u);
  // Bases from step 3, new/rows from step 2, frozen boxes from step 1.
  EXPECT_EQ(index4.chain->sources, (std::vector<std::string>{"../step-1", "../step-2", "../step-3"}));

  for (std::uint64_t step = 1; step <= 4; ++step) {
    for (int loading = 1; loading <= 4; ++loading) {
      SCOPED_TRACE("step " + std::to_string(step) + " loaded by " + std::to_string(loading) + " ranks");
      EXPECT_EQ(load_step(step_dir(step), loading, step), std::vector<std::string>());
    }
    const DistributedVerification verified = verify_distributed_checkpoint(step_dir(step));
    EXPECT_TRUE(verified.ok()) << step;
  }
}

// Rank r of 3 holds row block (r + step) % 3 of a slowly changing weight:
// each box of a save was written by another rank's file in the save before.
struct RotatingRows {
  static constexpr std::uint64_t rows = 9, columns = 5;
  int rank = 0;
  int world = 1;
  bool loading = false;  // loaded by columns
  std::uint64_t step = 0;
  std::uint64_t version = 0;  // of the content
  Tensor local;

  detail::PieceGeometry piece() const {
    const auto r = static_cast<std::uint64_t>(rank), w = static_cast<std::uint64_t>(world);
    if (loading) return sample_piece(Layout::columns, Shape{rows, columns}, rank, world);
    return sample_piece(Layout::rows, Shape{rows, columns}, static_cast<int>((r + step) % w), world);
  }
  float value(std::uint64_t element) const {
    return 1.0f + 0.01f * static_cast<float>(element) + 1e-5f * static_cast<float>(version * element % 7);
  }
  template <class Archive>
  void describe(Archive& ar) {
    const detail::PieceGeometry geometry = piece();
    ar("w", box_shard(local, Shape{rows, columns}, geometry.offsets, geometry.extents));
  }
};

// Saves `step` of RotatingRows, of content `version`, by 3 ranks with
// xor-delta against `parent` (empty: a full save) in one chain.
void save_rotating(const std::string& directory, std::uint64_t step, std::uint64_t version, const std::string& parent) {
  IncrementalOptions incremental = with_xor_delta();
  incremental.max_chain_fraction = 10;  // deltas count as stored bytes: keep one chain
  incremental.parent = parent;
  incremental.content_hashes = true;
  rethrow_first(run_ranks(3, [&](Communicator& communicator) {
    RotatingRows state{communicator.rank(), 3, false, step, version, {}};
    const detail::PieceGeometry geometry = state.piece();
    state.local = Tensor::allocate(DType::F32, geometry.stored_shape(Shape{RotatingRows::rows, RotatingRows::columns}));
    for_each_element(geometry, Shape{RotatingRows::rows, RotatingRows::columns},
                     [&](std::uint64_t position, std::uint64_t global) {
                       state.local.mutable_data_as<float>()[position] = state.value(global);
                     });
    DistributedOptions options;
    options.save.incremental = incremental;
    options.save.threads = 1;
    DistributedCheckpoint<RotatingRows>(communicator, options).save(directory, step, state);
  }));
}

// Loads `directory` with `world` ranks by columns: how many elements differ
// from content `version`.
std::uint64_t rotating_mismatches(const std::string& directory, int world, std::uint64_t version) {
  std::mutex mutex;
  std::uint64_t wrong = 0;
  rethrow_first(run_ranks(world, [&](Communicator& communicator) {
    RotatingRows state{communicator.rank(), world, true, 0, version, {}};
    DistributedCheckpoint<RotatingRows>(communicator).load(directory, state);
    std::lock_guard<std::mutex> lock(mutex);
    for_each_element(state.piece(), Shape{RotatingRows::rows, RotatingRows::columns},
                     [&](std::uint64_t position, std::uint64_t global) {
                       wrong += state.local.data_as<float>()[position] != state.value(global);
                     });
  }));
  return wrong;
}

// The file of `directory` holding the piece of `w` in box `box`.
std::string rotating_file(const std::string& directory, std::size_t box) {
  return read_distributed_index(directory).tensors.at("w").pieces.at(box).file;
}

TEST(IncrementalDistributed, XorDeltaBaseIsInWhicheverFileOfTheParentHoldsTheBox) {
  TempDir temp;
  const auto step_dir = [&](std::uint64_t step) { return temp.file("s" + std::to_string(step)); };
  for (std::uint64_t step = 1; step <= 3; ++step) {
    save_rotating(step_dir(step), step, step, step > 1 ? step_dir(step - 1) : "");
  }
  for (std::uint64_t step = 2; step <= 3; ++step) {
    const DistributedIndex index = read_distributed_index(step_dir(step));
    const DistributedIndex parent = read_distributed_index(step_dir(step - 1));
    for (std::size_t box = 0; box < 3; ++box) {
      SCOPED_TRACE("step " + std::to_string(step) + ", box " + std::to_string(box));
      const detail::IndexPiece& piece = index.tensors.at("w").pieces.at(box);
      const detail::IndexPiece& base = parent.tensors.at("w").pieces.at(box);
      ASSERT_EQ(piece.geometry, base.geometry);
      EXPECT_EQ(piece.codec, "xor-delta");
      EXPECT_NE(piece.file, base.file);  // written by another rank than in the parent
      EXPECT_EQ(Reader(step_dir(step) + "/" + piece.file).source_files(),
                std::vector<std::string>{"../s" + std::to_string(step - 1) + "/" + base.file});
    }
    for (int loading = 1; loading <= 3; ++loading) {
      EXPECT_EQ(rotating_mismatches(step_dir(step), loading, step), 0u) << "step " << step << " loaded by " << loading;
    }
  }
}

// A box unchanged from step 1 to 2 is referenced by step 2; changed at step
// 3, its base is step 2's piece, read through step 2's file from step 1's.
TEST(IncrementalDistributed, XorDeltaBaseMayBeAPieceTheParentReferences) {
  TempDir temp;
  save_rotating(temp.file("s1"), 1, 1, "");
  save_rotating(temp.file("s2"), 2, 1, temp.file("s1"));
  save_rotating(temp.file("s3"), 3, 3, temp.file("s2"));
  EXPECT_EQ(referenced_pieces(read_distributed_index(temp.file("s2")), "w"), 3u);
  const DistributedIndex index = read_distributed_index(temp.file("s3"));
  EXPECT_EQ(piece_codecs(index, "w"), std::vector<std::string>(3, "xor-delta"));
  ASSERT_TRUE(index.chain.has_value());
  EXPECT_EQ(index.chain->sources, std::vector<std::string>{"../s2"});
  EXPECT_EQ(Reader(temp.file("s3") + "/" + rotating_file(temp.file("s3"), 0)).source_files(),
            std::vector<std::string>{"../s2/" + rotating_file(temp.file("s2"), 0)});
  for (int loading = 1; loading <= 3; ++loading) {
    EXPECT_EQ(rotating_mismatches(temp.file("s3"), loading, 3), 0u) << "loaded by " << loading;
  }
  EXPECT_TRUE(verify_distributed_checkpoint(temp.file("s3")).ok());
}

// Rows split in 2 are no box of a split in 4: those pieces have no base and
// are stored by SaveOptions::codecs; the replicated one is an xor-delta.
TEST(IncrementalDistributed, XorDeltaFallsBackToTheCodecWhereTheBoxChanged) {
  TempDir temp;
  save_step(temp.file("a"), 4, 1, "", with_xor_delta());
  save_step(temp.file("b"), 2, 2, temp.file("a"), with_xor_delta());
  const DistributedIndex index = read_distributed_index(temp.file("b"));
  EXPECT_EQ(piece_codecs(index, "partly/rows"), (std::vector<std::string>{"raw", "raw"}));
  EXPECT_EQ(piece_codecs(index, "frozen/rows"), (std::vector<std::string>{"raw", "raw"}));
  EXPECT_EQ(piece_codecs(index, "moving/replicated"), std::vector<std::string>{"xor-delta"});
  EXPECT_EQ(referenced_pieces(index, "frozen/replicated"), 1u);
  for (int loading = 1; loading <= 3; ++loading)
    EXPECT_EQ(load_step(temp.file("b"), loading, 2), std::vector<std::string>());
}

TEST(IncrementalDistributed, DamagedXorDeltaBaseFailsTheLoadNamingTheParentFile) {
  TempDir temp;
  save_step(temp.file("step-1"), 2, 1, "", with_xor_delta());
  save_step(temp.file("step-2"), 2, 2, temp.file("step-1"), with_xor_delta());
  ASSERT_EQ(piece_codecs(read_distributed_index(temp.file("step-2")), "moving/replicated"),
            std::vector<std::string>{"xor-delta"});
  const detail::IndexPiece base =
      read_distributed_index(temp.file("step-1")).tensors.at("moving/replicated").pieces.at(0);
  damage_tensor(temp.file("step-1") + "/" + base.file, base.stored_name);
  expect_error<IntegrityError>([&] { load_step(temp.file("step-2"), 3, 2); }, ErrorId::integrity_tensor_checksum,
                               {"step-1/" + base.file, base.stored_name});
  // `ckpt verify` reports it in the child's file whose delta reads it.
  const DistributedVerification verified = verify_distributed_checkpoint(temp.file("step-2"));
  EXPECT_FALSE(verified.ok());
  std::string problems;
  for (const auto& file : verified.files) {
    for (const std::string& problem : file.problems) problems += problem + "\n";
  }
  EXPECT_NE(problems.find("[ckpt.integrity_error.301] file '" + temp.file("step-2") + "/../step-1/" + base.file +
                          "': tensor '" + base.stored_name + "'"),
            std::string::npos)
      << problems;
}

// The step directories in `directory`, by step.
std::vector<std::uint64_t> step_directories_in(const std::string& directory) {
  std::vector<std::uint64_t> steps;
  for (const auto& entry : std::filesystem::directory_iterator(directory)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("step-", 0) == 0) steps.push_back(std::stoull(name.substr(5)));
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// A manager keeping one step, over chains of 4 (full_every 4).
ManagerOptions keep_one_over_chains_of_4(bool xor_delta) {
  ManagerOptions options;
  options.name_template = "step-{step:06}";
  options.incremental = true;
  options.save.incremental.full_every = 4;
  options.save.incremental.xor_delta = xor_delta;
  options.save.threads = 1;
  options.retention.max_to_keep = 1;
  return options;
}

// max_to_keep 1 over chains of 4: each rotation deletes every older step but
// those the newest one reads from, and every step kept loads.
TEST(IncrementalDistributed, ManagerKeepsOnlyWhatTheNewestChainNeeds) {
  TempDir temp;
  const ManagerOptions options = keep_one_over_chains_of_4(false);
  // Frozen boxes come from step 1, new/rows from step 2, until step 5 is full.
  const std::vector<std::vector<std::uint64_t>> expected = {{1},    {1, 2}, {1, 2, 3}, {1, 2, 4}, {5},
                                                            {5, 6}, {5, 7}, {5, 8},    {9}};
  for (std::uint64_t step = 1; step <= 9; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    rethrow_first(run_ranks(2, [&](Communicator& communicator) {
      DistributedCheckpointManager manager(communicator, temp.path(), options);
      manager.save(step, state_for_saving(communicator.rank(), 2, step));
    }));
    EXPECT_EQ(step_directories_in(temp.path()), expected[step - 1]);
    const DistributedIndex index = read_distributed_index(temp.file("step-00000" + std::to_string(step)));
    EXPECT_EQ(index.chain ? index.chain->depth : 0, (step - 1) % 4);
    for (int loading : {1, 3}) {
      std::mutex mutex;
      std::vector<std::string> problems;
      rethrow_first(run_ranks(loading, [&](Communicator& communicator) {
        DistributedCheckpointManager manager(communicator, temp.path(), options);
        ChainState state{communicator.rank(), loading, true, step, {}};
        EXPECT_EQ(manager.restore_latest(state).checkpoint.step, step);
        std::lock_guard<std::mutex> lock(mutex);
        for (const std::string& problem : chain_differences(state)) problems.push_back(problem);
      }));
      EXPECT_EQ(problems, std::vector<std::string>()) << "restored by " << loading;
    }
  }
}

// The same with xor-delta: each step's changed boxes read their bases from
// the step before, so the whole chain since the last full save stays, and
// goes once a full save starts a new one.
TEST(IncrementalDistributed, ManagerWithXorDeltaKeepsTheChainOfBasesAndEveryKeptStepLoads) {
  TempDir temp;
  const ManagerOptions options = keep_one_over_chains_of_4(true);
  const std::vector<std::vector<std::uint64_t>> expected = {{1},    {1, 2},    {1, 2, 3},    {1, 2, 3, 4}, {5},
                                                            {5, 6}, {5, 6, 7}, {5, 6, 7, 8}, {9}};
  for (std::uint64_t step = 1; step <= 9; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    rethrow_first(run_ranks(2, [&](Communicator& communicator) {
      DistributedCheckpointManager manager(communicator, temp.path(), options);
      manager.save(step, state_for_saving(communicator.rank(), 2, step));
    }));
    const std::vector<std::uint64_t> kept = step_directories_in(temp.path());
    EXPECT_EQ(kept, expected[step - 1]);
    const DistributedIndex index = read_distributed_index(temp.file("step-00000" + std::to_string(step)));
    if (step % 4 != 1) {
      EXPECT_EQ(piece_codecs(index, "moving/replicated"), std::vector<std::string>{"xor-delta"});
    }
    for (std::uint64_t kept_step : kept) {
      for (int loading : {1, 3}) {
        EXPECT_EQ(load_step(temp.file("step-00000" + std::to_string(kept_step)), loading, kept_step),
                  std::vector<std::string>())
            << "step " << kept_step << " loaded by " << loading;
      }
    }
  }
}

// Power loss during a DistributedCheckpointManager's incremental saves (the
// model of support/crash_states.hpp): two ranks save a frozen 6 x 4 weight by
// rows and a moving vector by flat halves, steps 1 and 2 (step 2 references
// step 1's frozen boxes). In every crash state, every committed
// step loads bit-exactly and a restart restores the newest step whose save
// returned, or a newer one. Retention keeps every step: the recorder does not
// model the rename of a directory with files in it, which is how a rotation
// deletes a step directory: collection is tested by the kill test below.
struct CrashShards {
  std::vector<float> frozen, moving;
  std::uint64_t step = 0;
  int rank = 0;
  template <class Archive>
  void describe(Archive& ar) {
    const auto r = static_cast<std::uint64_t>(rank);
    ar("frozen", box_shard(frozen, Shape{6, 4}, Shape{3 * r, 0}, Shape{3, 4}));
    ar("moving", flat_shard(moving, Shape{8}, 4 * r, 4))("step", replicated(step));
  }
};

struct CrashWhole {
  std::vector<float> frozen, moving;
  std::uint64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("frozen", shaped(frozen, Shape{6, 4}))("moving", shaped(moving, Shape{8}))("step", step);
  }
};

float frozen_value(std::size_t index) { return 0.5f * static_cast<float>(index); }
float moving_value(std::uint64_t step, std::size_t index) { return 100.0f * static_cast<float>(step) + index; }

bool crash_state_holds(const CrashWhole& state, std::uint64_t step) {
  if (state.step != step || state.frozen.size() != 24 || state.moving.size() != 8) return false;
  for (std::size_t i = 0; i < 24; ++i) {
    if (state.frozen[i] != frozen_value(i)) return false;
  }
  for (std::size_t i = 0; i < 8; ++i) {
    if (state.moving[i] != moving_value(step, i)) return false;
  }
  return true;
}

ManagerOptions crash_manager_options() {
  ManagerOptions options;
  options.name_template = "step-{step:06}";
  options.incremental = true;
  options.save.threads = 1;
  options.retention.max_to_keep = 0;
  return options;
}

std::string judge_distributed_chain_crash(const std::string& run, const Marks& marks) {
  std::uint64_t newest_done = 0, newest_begun = 0;
  for (const std::string& mark : marks) {
    const std::uint64_t step = std::stoull(mark.substr(mark.find(' ') + 1));
    (mark.rfind("done ", 0) == 0 ? newest_done : newest_begun) = step;
  }
  if (!std::filesystem::exists(run)) return newest_done == 0 ? "" : "the run directory is gone";
  for (const auto& entry : std::filesystem::directory_iterator(run)) {
    const std::string directory = entry.path().string();
    if (entry.path().filename().string().rfind("step-", 0) != 0 || !is_committed_checkpoint(directory)) continue;
    try {
      SingleProcessCommunicator one;
      CrashWhole loaded;
      DistributedCheckpoint<CrashWhole>(one).load(directory, loaded);
      if (!crash_state_holds(loaded, read_distributed_index(directory).step)) return directory + " loads other values";
    } catch (const Error& error) {
      return "committed " + directory + " does not load: " + error.what();
    }
  }
  try {
    SingleProcessCommunicator one;
    DistributedCheckpointManager manager(one, run, crash_manager_options());
    CrashWhole restored;
    const RestoreResult result = manager.restore_latest(restored);
    if (!result.skipped.empty()) return "restore skipped " + result.skipped[0].reason;
    const std::uint64_t step = result.checkpoint.step;
    if (step < newest_done || step > newest_begun) return "restored step " + std::to_string(step);
    if (!crash_state_holds(restored, step)) return "restored other values";
  } catch (const StateError& error) {
    if (newest_done != 0) return std::string("nothing restored: ") + error.what();
  }
  return "";
}

TEST(IncrementalDistributed, CrashStatesOfIncrementalSaves) {
  TempDir temp;
  const std::string root = temp.file("recorded");
  std::filesystem::create_directory(root);
  RecordingFileSystem recorder(root);
  {
    ScopedFileSystem scoped(recorder);
    rethrow_first(run_ranks(2, [&](Communicator& communicator) {
      DistributedCheckpointManager manager(communicator, root + "/run", crash_manager_options());
      for (std::uint64_t step = 1; step <= 2; ++step) {
        CrashShards shards;
        shards.rank = communicator.rank();
        shards.step = step;
        for (std::size_t i = 0; i < 12; ++i) shards.frozen.push_back(frozen_value(12 * shards.rank + i));
        for (std::size_t i = 0; i < 4; ++i) shards.moving.push_back(moving_value(step, 4 * shards.rank + i));
        if (communicator.rank() == 0) recorder.mark("begin " + std::to_string(step));
        manager.save(step, shards);
        if (communicator.rank() == 0) recorder.mark("done " + std::to_string(step));
      }
    }));
  }
  EXPECT_EQ(step_directories_in(root + "/run"), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(read_distributed_index(root + "/run/step-000002").chain->sources,
            std::vector<std::string>{"../step-000001"});
  CrashStates states(recorder.log(), recorder.directory_inodes());
  const CrashStateCounts counts =
      states.explore(temp.file("crashed"), CrashSpace{}, [](const std::string& directory, const Marks& marks) {
        return judge_distributed_chain_crash(directory + "/run", marks);
      });
  std::cout << "[crash states] incremental distributed manager: " << counts.crash_points << " crash points, "
            << counts.states << " states checked" << (counts.sampled ? " (sampled)" : " (exhaustive)") << ", "
            << counts.violations << " violations" << std::endl;
  for (const std::string& violation : counts.first_violations) ADD_FAILURE() << violation;
  EXPECT_EQ(counts.violations, 0u);
  EXPECT_GT(counts.states, 100u);
}

// A kill at any file call of an incremental save and its collection (a
// forked process crashing before its nth call, one rank): the save of step 6
// against step 5, which references steps 1 and 2, whose rotation deletes
// step 5 and must keep 1 and 2. Afterwards every committed step loads
// bit-exactly, a restart restores step 5 or 6, and its next save collects
// everything the new chain does not need.
TEST(IncrementalDistributed, KillAtAnyCallOfASaveWithCollectionKeepsTheChainLoadable) {
#ifdef __SANITIZE_THREAD__
  // The saves before the fork leave threads behind, and ThreadSanitizer
  // cannot start threads in a child forked from a threaded process; the main
  // and ASan trees run this test.
  GTEST_SKIP() << "ThreadSanitizer does not support starting threads after a multi-threaded fork";
#endif
  TempDir committed, work;
  ManagerOptions options;
  options.name_template = "step-{step:06}";
  options.incremental = true;
  options.save.threads = 1;
  options.retention.max_to_keep = 1;
  options.save.incremental.max_chain_fraction = 10;  // one chain from step 1 to 7
  // A killed process leaves the page cache to the system: fsyncs matter for
  // power loss (the crash states above), not here, and cost most of the time.
  options.save.durable = false;
  const auto save_steps = [&](const std::string& directory, std::uint64_t first, std::uint64_t last) {
    SingleProcessCommunicator one;
    DistributedCheckpointManager manager(one, directory, options);
    for (std::uint64_t step = first; step <= last; ++step) manager.save(step, state_for_saving(0, 1, step));
  };
  save_steps(committed.path(), 1, 5);
  ASSERT_EQ(step_directories_in(committed.path()), (std::vector<std::uint64_t>{1, 2, 5}));
  FaultFileSystem counting;
  {
    ScopedFileSystem scoped(counting);
    std::filesystem::copy(committed.path(), work.file("counted"), std::filesystem::copy_options::recursive);
    save_steps(work.file("counted"), 6, 6);
  }
  const std::uint64_t calls = counting.total_calls();
  for (std::uint64_t nth = 1; nth <= calls + 1; ++nth) {
    SCOPED_TRACE("crash before call #" + std::to_string(nth) + " of " + std::to_string(calls));
    const std::string directory = work.file("run" + std::to_string(nth));
    std::filesystem::copy(committed.path(), directory, std::filesystem::copy_options::recursive);
    const ChildOutcome outcome = run_crashing_at(nth, [&] { save_steps(directory, 6, 6); });
    ASSERT_EQ(outcome, nth <= calls ? ChildOutcome::crashed : ChildOutcome::completed);
    for (std::uint64_t step : step_directories_in(directory)) {
      const std::string step_directory = directory + "/step-00000" + std::to_string(step);
      if (is_committed_checkpoint(step_directory)) {
        EXPECT_EQ(load_step(step_directory, 1, step).size(), 0u) << step;
      }
    }
    {
      SingleProcessCommunicator one;
      DistributedCheckpointManager manager(one, directory, options);
      ChainState restored{0, 1, true, 6, {}};
      const RestoreResult result = manager.restore_latest(restored);
      EXPECT_TRUE(result.checkpoint.step == 5 || result.checkpoint.step == 6) << result.checkpoint.step;
      EXPECT_TRUE(result.skipped.empty());
      restored.step = result.checkpoint.step;  // the tensors a step holds
      EXPECT_EQ(chain_differences(restored), std::vector<std::string>());
    }
    save_steps(directory, 7, 7);
    EXPECT_EQ(step_directories_in(directory), (std::vector<std::uint64_t>{1, 2, 7}));
  }
}

}  // namespace
}  // namespace ckpt::test

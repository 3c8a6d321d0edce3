#pragma once

// Incremental distributed saves (docs/distributed.md, "Incremental
// checkpoints"): each rank hashes the pieces it writes and compares each
// with the parent checkpoint's piece of the same tensor and box, reading the
// parent's index and the headers of the parent's files that hold such boxes
// (never their data). The ranks then agree on the chain policy over the
// whole checkpoint's bytes, and each rank's file references what the parent
// holds, as an incremental single file does (write/incremental.hpp): a rank
// file is an ordinary ckpt file whose references name files of the parent's
// directory (or of the directories the parent itself references). With
// xor-delta, a changed piece whose box the parent holds is stored as the XOR
// against the parent's piece, whichever of the parent's files holds it.

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/save_plan.hpp"
#include "ckpt/detail/distributed/wire.hpp"
#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/error.hpp"
#include "ckpt/incremental.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// One rank's pieces compared with the parent checkpoint.
struct BoxComparison {
  std::vector<ContentHash> hashes;                      // of each piece the rank writes
  std::vector<std::optional<ContentSource>> found;      // where the parent holds the same content
  std::vector<std::optional<DeltaSource>> delta_bases;  // xor-delta: the parent's piece of the same box
  std::uint64_t stored_bytes = 0;                       // bytes of the pieces the parent does not hold
  std::uint64_t total_bytes = 0;
  bool any_delta = false;
};

// The parent of an incremental distributed save: its directory as given and
// its committed index.
struct ParentCheckpoint {
  std::string directory;
  CheckpointIndex index;
};

// Refuses what a distributed save cannot do with `options`, then reads the
// parent's index (nullopt without a parent). `directory` is the save's.
template <class = void>
std::optional<ParentCheckpoint> read_parent_checkpoint(const std::string& directory,
                                                       const IncrementalOptions& options) {
  check_chain_policy(directory, options);
  if (options.parent.empty()) return std::nullopt;
  if (absolute_path(options.parent.path()) == absolute_path(directory)) {
    throw ArgumentError(ErrorId::argument_invalid, directory, "",
                        "expected a parent checkpoint other than the directory being saved, found the same directory");
  }
  const std::string parent = trimmed_directory(options.parent.path());
  return ParentCheckpoint{parent, read_index_of(parent)};
}

// A file of the parent as far as its header tells, read once per save.
struct ParentFile {
  std::string path;
  ParsedHeader header;
  bool committed = false;                        // the file its index committed: usable
  std::map<ContentKey, ContentSource> contents;  // when committed
};

// Hashes the pieces `rank` writes (`to_write`, in plan order) and finds, for
// each, the parent's piece of the same tensor (dtype and global shape) and
// box: when its content is equal, a source in the file storing it, named
// relative to `directory`; otherwise, with `xor_delta`, that piece as the
// base to store the XOR against (in the parent's file holding it, read
// through that file). A parent file that is not the one its index committed
// is not used.
template <class = void>
BoxComparison compare_boxes(const SavePlan& plan, int rank, const std::vector<NamedTensor>& to_write,
                            const std::optional<ParentCheckpoint>& parent, const std::string& directory, bool xor_delta,
                            unsigned threads) {
  BoxComparison comparison;
  comparison.hashes = content_hashes_of(to_write, threads);
  comparison.found.resize(to_write.size());
  comparison.delta_bases.resize(to_write.size());
  const std::filesystem::path child = absolute_path(directory);
  std::map<std::string, ParentFile> parent_files;
  const auto parent_file = [&](const std::string& name) -> const ParentFile& {
    const auto cached = parent_files.find(name);
    if (cached != parent_files.end()) return cached->second;
    ParentFile& file = parent_files[name];
    file.path = join({parent->directory, "/", name});
    const MappedFile mapped(file.path);
    file.header = HeaderParser<>(file.path, mapped.data(), mapped.size()).parse();
    file.committed = file.header.header_xxh3 == parent->index.files.at(name).header_xxh3;
    if (file.committed) file.contents = parent_contents(file.header, file.path, child);
    return file;
  };
  const auto pieces = pieces_written_by(plan, rank);
  for (std::size_t i = 0; i < to_write.size(); ++i) {
    const TensorView& view = to_write[i].view;
    comparison.total_bytes += view.nbytes();
    const auto [tensor, piece] = pieces[i];
    const IndexTensor* same_tensor = nullptr;
    if (parent) {
      const auto found = parent->index.tensors.find(tensor->name);
      if (found != parent->index.tensors.end() && found->second.dtype == tensor->dtype &&
          found->second.shape == tensor->shape) {
        same_tensor = &found->second;
      }
    }
    const IndexPiece* same_box = nullptr;
    if (same_tensor != nullptr) {
      for (const IndexPiece& parent_piece : same_tensor->pieces) {
        if (parent_piece.geometry == piece->geometry) same_box = &parent_piece;
      }
    }
    if (same_box != nullptr) {
      const ParentFile& file = parent_file(same_box->file);
      const auto source = file.contents.find(ContentKey{comparison.hashes[i], view.dtype(), view.shape()});
      if (source != file.contents.end()) {
        comparison.found[i] = source->second;
      } else if (xor_delta && file.committed) {
        const auto base = parent_content_of(file.header, same_box->stored_name, view.dtype(), view.shape());
        if (base) {
          comparison.delta_bases[i] = DeltaSource{
              {relative_file_name(absolute_path(file.path), child), file.header.header_xxh3, same_box->stored_name},
              file.path,
              *base};
          comparison.any_delta = true;
        }
      }
    }
    if (!comparison.found[i]) comparison.stored_bytes += view.nbytes();
  }
  return comparison;
}

template <class = void>
std::string encode_comparison_bytes(const BoxComparison& comparison) {
  WireWriter writer;
  writer.u64(comparison.stored_bytes).u64(comparison.total_bytes).u64(comparison.any_delta ? 1 : 0);
  return std::move(writer).take();
}

// The checkpoint's chain record, from every rank's comparison (the same on
// every rank), or nullopt when the chain policy makes it a full save. Its
// sources are the commit's to fill in.
template <class = void>
std::optional<IndexChain> agreed_chain(const std::vector<std::string>& comparisons,
                                       const std::optional<ParentCheckpoint>& parent, const std::string& directory,
                                       const IncrementalOptions& options) {
  if (!parent) return std::nullopt;
  std::uint64_t stored = 0, total = 0;
  bool any_delta = false;  // a checkpoint storing only xor-deltas is still incremental
  for (const std::string& bytes : comparisons) {
    WireReader reader(bytes);
    stored += reader.u64();
    total += reader.u64();
    any_delta = reader.u64() != 0 || any_delta;
    reader.expect_end();
  }
  const std::optional<IndexChain>& parent_chain = parent->index.chain;
  const std::uint64_t depth = parent_chain ? parent_chain->depth : 0;
  const std::uint64_t chain_bytes = parent_chain ? parent_chain->chain_bytes : 0;
  if (chain_policy_wants_full(options, depth, chain_bytes, stored, total, any_delta)) return std::nullopt;
  return IndexChain{relative_file_name(absolute_path(parent->directory), absolute_path(directory)),
                    depth + 1,
                    chain_bytes + stored,
                    {}};
}

// This rank's file: its pieces less those the parent holds, the changed
// ones with a base stored as xor-deltas (all of them stored by their codecs
// when `chain` is nullopt), with every stored piece's content hash. A file
// that references nothing and stores no xor-delta is an ordinary file; any
// other names as its parent the first file it reads from, and carries the
// checkpoint's depth and chain bytes.
template <class = void>
ContentPlan<> rank_content_plan(const std::vector<NamedTensor>& to_write, BoxComparison comparison,
                                const std::optional<IndexChain>& chain) {
  ContentPlan<> plan;
  plan.hashed = true;
  std::optional<ChainInfo> file_chain;
  bool reads_parent = false;
  for (std::size_t i = 0; i < to_write.size(); ++i) {
    if (!chain) {
      comparison.found[i].reset();
      comparison.delta_bases[i].reset();
    }
    reads_parent = reads_parent || comparison.found[i] || comparison.delta_bases[i];
  }
  if (reads_parent) file_chain = ChainInfo{{}, chain->depth, chain->chain_bytes, {}, {}, {}};
  plan = assemble_content(std::move(plan), to_write, comparison.hashes, comparison.found, comparison.delta_bases,
                          std::move(file_chain));
  if (plan.chain) plan.chain->parent = plan.chain->sources.front();
  return plan;
}

// The directories the files of a checkpoint read referenced bytes from, from
// their sources (file names relative to the checkpoint's directory), sorted.
template <class = void>
std::vector<std::string> source_directories(const std::vector<WrittenFile>& files) {
  std::set<std::string> directories;
  for (const WrittenFile& file : files) {
    for (const std::string& source : file.sources) {
      directories.insert(std::filesystem::path(source).parent_path().generic_string());
    }
  }
  return {directories.begin(), directories.end()};
}

}  // namespace ckpt::detail

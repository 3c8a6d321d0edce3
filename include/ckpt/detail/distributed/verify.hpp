#pragma once

// Everything that can be checked about a distributed checkpoint without the
// state it holds: the index (and so that the pieces tile every tensor, which
// parsing it checks), every file it lists (size and header checksum as the
// index recorded them, every tensor's checksum, every encoded tensor
// decoded), and every piece (in its file under its name, with the dtype,
// shape, codec and checksum the index records). What `ckpt verify DIR` runs.

#include <cstdint>
#include <exception>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/reader.hpp"

namespace ckpt::detail {

struct DistributedVerification {
  struct File {
    std::string name;
    std::uint64_t tensors = 0;
    std::vector<std::string> problems;  // one error message each
    // The first of `problems` as it was thrown, so that a restore can throw
    // it again with its own kind and id.
    std::exception_ptr first_problem;
  };
  bool index_read = false;
  std::uint64_t step = 0;
  std::uint64_t world_size = 0;
  std::uint64_t tensors = 0;
  std::uint64_t pieces = 0;
  std::vector<File> files;
  std::vector<std::string> problems;  // the index's, and the pieces'

  bool ok() const {
    for (const File& file : files) {
      if (!file.problems.empty()) return false;
    }
    return index_read && problems.empty();
  }
};

// Checks one file of a committed checkpoint: that it is the file the index
// committed (size and header checksum), and every tensor's checksum (each
// encoded tensor decoded). `recorded`, when given, receives the tensors its
// header records.
template <class = void>
DistributedVerification::File verify_committed_file(const std::string& directory, const std::string& name,
                                                    const IndexFile& expected,
                                                    std::map<std::string, RecordedTensor>* recorded = nullptr) {
  DistributedVerification::File file{name, 0, {}, nullptr};
  const auto note = [&file](const Error& error, std::exception_ptr thrown) {
    file.problems.push_back(error.what());
    if (!file.first_problem) file.first_problem = std::move(thrown);
  };
  try {
    const Reader reader(join({directory, "/", name}), ReadOptions{true, 0});
    if (const auto problem = committed_file_problem(reader, expected)) {
      note(*problem, std::make_exception_ptr(*problem));
    }
    for (const TensorInfo& info : reader.tensors()) {
      try {
        reader.tensor(info.name);  // checks the checksum, and decodes
      } catch (const Error& error) {
        note(error, std::current_exception());
      }
    }
    file.tensors = reader.tensors().size();
    if (recorded != nullptr) *recorded = recorded_tensors(reader);
  } catch (const Error& error) {
    note(error, std::current_exception());
  }
  return file;
}

template <class = void>
DistributedVerification verify_directory(const std::string& directory) {
  DistributedVerification result;
  CheckpointIndex index;
  try {
    index = read_index_of(directory);
  } catch (const Error& error) {
    result.problems.push_back(error.what());
    return result;
  }
  result.index_read = true;
  result.step = index.step;
  result.world_size = index.world_size;
  result.tensors = index.tensors.size();
  std::map<std::string, std::map<std::string, RecordedTensor>> recorded;  // by file, by stored name
  for (const auto& [name, expected] : index.files) {
    result.files.push_back(verify_committed_file(directory, name, expected, &recorded[name]));
  }
  for (const auto& [name, tensor] : index.tensors) {
    for (const IndexPiece& piece : tensor.pieces) {
      ++result.pieces;
      const auto file = recorded.find(piece.file);
      if (file == recorded.end()) continue;  // the file's own problem is reported
      const auto found = file->second.find(piece.stored_name);
      const Shape shape = piece.geometry.stored_shape(tensor.shape);
      const bool same = found != file->second.end() && found->second.dtype == tensor.dtype &&
                        found->second.shape == shape && found->second.codec == piece.codec &&
                        found->second.xxh3 == piece.xxh3;
      if (!same) {
        const std::string found_text = found == file->second.end() ? "no such tensor" : recorded_text(found->second);
        result.problems.push_back(
            FormatError(ErrorId::format_metadata, join({directory, "/", piece.file}), piece.stored_name,
                        join({"the index stores a piece of '", name, "' here: expected ",
                              recorded_text({tensor.dtype, shape, piece.codec, piece.xxh3, std::nullopt, 0}),
                              ", found ", found_text}))
                .what());
      }
    }
  }
  return result;
}

}  // namespace ckpt::detail

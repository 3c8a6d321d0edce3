#pragma once

// Distributed checkpoint directories in the tool (docs/distributed.md):
// `info` shows the index, `verify` checks every file, piece and tensor, and
// `convert` and `diff` read the tensors whole, as one file would hold them.

#include <map>
#include <ostream>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "ckpt/distributed/checkpoint.hpp"
#include "ckpt/distributed/directory.hpp"
#include "ckpt/interop/tensor_set.hpp"
#include "common.hpp"
#include "table.hpp"

namespace ckpt::cli {

// A directory a distributed save wrote: committed (with its index) or not.
inline bool is_checkpoint_directory(const std::string& path) {
  return is_directory(path) && (is_committed_checkpoint(path) || is_uncommitted_checkpoint(path));
}

// Every tensor whole, as a single process loads them, and the metadata.
inline TensorSet load_checkpoint_directory(const std::string& path) {
  SingleProcessCommunicator one_process;
  std::map<std::string, Tensor> tensors;
  DistributedCheckpoint<std::map<std::string, Tensor>>(one_process).load(path, tensors);
  TensorSet set;
  for (auto& [name, tensor] : tensors) set.tensors.emplace_back(name, std::move(tensor));
  set.metadata = read_distributed_index(path).metadata;
  return set;
}

inline nlohmann::json describe_checkpoint_directory(const std::string& path) {
  const DistributedIndex index = read_distributed_index(path);
  nlohmann::json report = {{"directory", path},
                           {"format", "ckpt distributed"},
                           {"format_version", index.format_version},
                           {"step", index.step},
                           {"world_size", index.world_size},
                           {"stored_bytes", index.total_size},
                           {"files", nlohmann::json::array()},
                           {"tensors", nlohmann::json::array()},
                           {"metadata", index.metadata}};
  if (index.chain) {
    report["chain"] = {{"parent", index.chain->parent},
                       {"depth", index.chain->depth},
                       {"chain_bytes", index.chain->chain_bytes},
                       {"sources", index.chain->sources}};
  }
  std::uint64_t file_bytes = 0, tensor_bytes = 0, pieces = 0, referenced = 0;
  for (const auto& [name, file] : index.files) {
    report["files"].push_back({{"name", name}, {"bytes", file.bytes}});
    file_bytes += file.bytes;
  }
  for (const auto& [name, tensor] : index.tensors) {
    std::set<std::string> files;
    for (const DistributedPieceInfo& piece : tensor.pieces) {
      files.insert(piece.file);
      referenced += piece.referenced();
    }
    const std::uint64_t bytes = byte_size(tensor.dtype, tensor.shape);
    report["tensors"].push_back({{"name", name},
                                 {"dtype", dtype_name(tensor.dtype)},
                                 {"shape", tensor.shape},
                                 {"bytes", bytes},
                                 {"pieces", tensor.pieces.size()},
                                 {"files", files.size()}});
    tensor_bytes += bytes;
    pieces += tensor.pieces.size();
  }
  report["file_bytes"] = file_bytes;
  report["tensor_bytes"] = tensor_bytes;
  report["pieces"] = pieces;
  report["referenced_pieces"] = referenced;
  return report;
}

inline void print_checkpoint_directory(const nlohmann::json& report, std::ostream& out) {
  out << "directory: " << report["directory"].get<std::string>() << " (ckpt distributed checkpoint, format "
      << report["format_version"] << ")\n";
  out << "step:      " << report["step"] << ", saved by " << report["world_size"] << " ranks into "
      << report["files"].size() << " files of " << human_bytes(report["file_bytes"]) << "\n";
  out << "tensors:   " << report["tensors"].size() << ", " << human_bytes(report["tensor_bytes"]) << " in "
      << report["pieces"] << " pieces\n";
  if (report.contains("chain")) {
    // An incremental checkpoint: where its referenced pieces are read from.
    const nlohmann::json& chain = report["chain"];
    out << "chain:     depth " << chain["depth"] << ", parent " << chain["parent"].get<std::string>() << "; "
        << report["referenced_pieces"] << " pieces referenced, read from";
    for (const nlohmann::json& source : chain["sources"]) out << " " << source.get<std::string>();
    out << "\n";
  }
  out << "\n";
  std::vector<Row> rows;
  for (const nlohmann::json& tensor : report["tensors"]) {
    rows.push_back({tensor["name"], tensor["dtype"], shape_to_string(tensor["shape"].get<Shape>()),
                    std::to_string(tensor["bytes"].get<std::uint64_t>()), std::to_string(tensor["pieces"].get<int>()),
                    std::to_string(tensor["files"].get<int>())});
  }
  print_table(out, {"NAME", "DTYPE", "SHAPE", "BYTES", "PIECES", "FILES"}, rows);
  out << "\nmetadata: " << report["metadata"].dump(2) << "\n";
}

// One line per good file and per problem; exit_problem when anything is wrong.
inline int verify_checkpoint_directory(const std::string& path, std::ostream& out, std::ostream& err) {
  const DistributedVerification result = verify_distributed_checkpoint(path);
  std::size_t corrupt_files = 0;
  for (const DistributedVerification::File& file : result.files) {
    if (file.problems.empty()) {
      out << "OK       " << path << "/" << file.name << " (" << file.tensors
          << " tensors, checksums verified, the file the index committed)\n";
      continue;
    }
    ++corrupt_files;
    for (const std::string& problem : file.problems) out << "CORRUPT  " << problem << "\n";
  }
  for (const std::string& problem : result.problems) out << "CORRUPT  " << problem << "\n";
  if (result.ok()) {
    out << "OK       " << path << " (step " << result.step << " of " << result.world_size
        << " ranks: " << result.tensors << " tensors in " << result.pieces
        << " pieces, each tensor covered without gap or overlap)\n";
    return exit_ok;
  }
  err << "ckpt verify: " << path << ": " << corrupt_files << " of " << result.files.size() << " files corrupt, "
      << result.problems.size() << " other problems\n";
  return exit_problem;
}

}  // namespace ckpt::cli

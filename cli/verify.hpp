#pragma once

// ckpt verify FILE|DIR: checks every checksum of a file, or of every
// checkpoint file in a directory, and names each corrupt file and tensor; an
// incremental checkpoint's referenced tensors are checked in the files of its
// chain that store them. A
// distributed checkpoint directory is checked as one checkpoint: its index,
// every file, every piece, every tensor's coverage.

#include <algorithm>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "args.hpp"
#include "common.hpp"
#include "distributed.hpp"
#include "formats.hpp"
#include "progress.hpp"

namespace ckpt::cli {

struct VerifyResult {
  std::vector<std::string> problems;  // one message per corrupt tensor (or file)
  std::string summary;                // what was checked, when all is good
};

// `read` hears of each tensor verified.
inline VerifyResult verify_file(const std::string& path, FileFormat format, const BytesRead& read = nullptr) {
  VerifyResult result;
  try {
    if (format != FileFormat::safetensors) {
      // Loading checks everything these formats can check (e.g. CRC-32 of .npz members).
      result.summary = std::to_string(load_tensors(path, format).tensors.size()) + " tensors read";
      return result;
    }
    const Reader reader(path, ReadOptions{true, 0});
    // Each tensor on its own, so that every corrupt tensor is named. A
    // referenced tensor is read from the file of the chain storing it, which
    // checks that file's header checksum and the tensor's recorded content.
    std::size_t referenced = 0;
    for (const TensorInfo& info : reader.tensors()) {
      referenced += info.stored_in.empty() ? 0 : 1;
      try {
        reader.tensor(info.name);
      } catch (const Error& error) {
        result.problems.push_back(error.what());
      }
      if (read) read(info.stored_bytes);
    }
    result.summary = std::to_string(reader.tensors().size()) + " tensors" +
                     (referenced ? " (" + std::to_string(referenced) + " read from " +
                                       std::to_string(reader.source_files().size()) + " files of its chain)"
                                 : std::string()) +
                     ", " +
                     (reader.written_by_ckpt() ? "checksums verified"
                                               : "no checksums (not written by ckpt): header and sizes checked");
  } catch (const Error& error) {
    result.problems.push_back(error.what());
  }
  return result;
}

// Checkpoint files of a directory, chosen by extension (a directory also
// holds notes, logs and the like, which are not checked), sorted; dotfiles
// (temp files, the manager's index) are not checkpoints.
inline std::vector<std::string> checkpoint_files(const std::string& directory) {
  std::vector<std::string> files;
  for (const auto& item : std::filesystem::directory_iterator(directory)) {
    const std::string name = item.path().filename().string();
    if (name.empty() || name[0] == '.' || !item.is_regular_file()) continue;
    const std::optional<FileFormat> format = format_by_extension(name);
    if (format && is_supported(*format)) files.push_back(item.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

inline int run_verify(const Arguments& args, std::ostream& out, std::ostream& err) {
  const std::string& path = args.positionals()[0];
  require_existing(path);
  if (is_checkpoint_directory(path)) return verify_checkpoint_directory(path, out, err);
  const std::vector<std::string> files = is_directory(path) ? checkpoint_files(path) : std::vector{path};
  if (files.empty()) err << "ckpt verify: no checkpoint files in '" << path << "'\n";
  std::size_t corrupt = 0;
  std::uint64_t total_bytes = 0, files_bytes = 0;
  for (const std::string& file : files) total_bytes += input_bytes(file);
  ProgressLine progress("ckpt verify", total_bytes);
  for (const std::string& file : files) {
    const VerifyResult result =
        verify_file(file, input_format(file), [&](std::uint64_t bytes) { progress.advance(bytes); });
    progress.update(files_bytes += input_bytes(file));  // the headers too, and other formats
    const auto lines_above = progress.print_above(out);
    if (result.problems.empty()) {
      out << "OK       " << file << " (" << result.summary << ")\n";
      continue;
    }
    ++corrupt;
    for (const std::string& problem : result.problems) out << "CORRUPT  " << problem << "\n";
  }
  progress.clear();
  if (corrupt != 0) err << "ckpt verify: " << corrupt << " of " << files.size() << " files corrupt\n";
  return corrupt == 0 ? exit_ok : exit_problem;
}

}  // namespace ckpt::cli

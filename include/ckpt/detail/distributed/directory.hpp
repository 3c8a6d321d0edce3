#pragma once

// The files of a distributed checkpoint directory: readying the directory
// for a save (what an uncommitted save left is removed; a committed
// checkpoint is kept unless the save may replace it), each rank's file and
// the record of it sent to the coordinator, the index whose rename commits
// the checkpoint, and removal in the order that never leaves a directory
// that looks committed but is not. Every file call goes through the
// FileSystem seam (os/file_system.hpp).

#include <fcntl.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/distributed/file_names.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/wire.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/incremental.hpp"
#include "ckpt/error.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/writer.hpp"

namespace ckpt::detail {

// "runs/step-100/" -> "runs/step-100": one spelling per directory.
template <class = void>
std::string trimmed_directory(std::string directory) {
  while (directory.size() > 1 && directory.back() == '/') directory.pop_back();
  return directory;
}

template <class = void>
std::string index_path_of(const std::string& directory) {
  return join({directory, "/", distributed_index_file});
}

// The checkpoint files in `directory` (see is_checkpoint_file_name), sorted.
template <class = void>
std::vector<std::string> checkpoint_files_in(const std::string& directory) {
  std::vector<std::string> paths;
  for (const std::string& name : directory_names(directory)) {
    if (is_checkpoint_file_name(name)) paths.push_back(join({directory, "/", name}));
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// Readies `directory` for a save (run by the coordinator before any rank
// writes). A committed checkpoint there is refused, or with `overwrite`
// uncommitted first; then whatever an earlier save left is removed. Files
// that are not a checkpoint's stay.
template <class = void>
void prepare_directory(const std::string& directory, bool overwrite, bool durable) {
  const std::string index_path = index_path_of(directory);
  if (path_exists(index_path)) {
    if (!overwrite) {
      throw StateError(ErrorId::state_exists, directory, "",
                       "a committed checkpoint is already in this directory; expected a new directory, or "
                       "DistributedOptions::overwrite to replace it");
    }
    // Uncommitted first: a crash from here on leaves a directory no load accepts.
    remove_file(index_path);
    if (durable) fsync_directory(directory);
  }
  if (is_directory(directory)) {
    for (const std::string& path : checkpoint_files_in(directory)) remove_file(path);
    return;
  }
  create_directories(directory, durable);
}

// What a rank tells the coordinator about the file it wrote.
struct WrittenFile {
  struct Piece {
    std::string stored_name;
    std::string codec;
    std::uint64_t stored_bytes = 0;
    std::uint64_t xxh3 = 0;
    std::optional<std::uint64_t> raw_xxh3;
    std::optional<ContentHash> xxh128;  // a referenced piece's (codec reference_codec)
  };
  std::string name;  // empty: the rank wrote no file
  std::uint64_t bytes = 0;
  std::uint64_t header_xxh3 = 0;
  std::vector<Piece> pieces;
  std::vector<std::string> sources;  // the files its references and xor-delta bases read from, relative to it
};

template <class = void>
std::string encode_written_file(const WrittenFile& file) {
  WireWriter writer;
  writer.text(file.name).u64(file.bytes).u64(file.header_xxh3).u64(file.pieces.size());
  for (const WrittenFile::Piece& piece : file.pieces) {
    writer.text(piece.stored_name).text(piece.codec).u64(piece.stored_bytes).u64(piece.xxh3);
    writer.u64(piece.raw_xxh3 ? 1 : 0).u64(piece.raw_xxh3.value_or(0));
    writer.u64(piece.xxh128 ? 1 : 0).u64(piece.xxh128.value_or(ContentHash{}).high);
    writer.u64(piece.xxh128.value_or(ContentHash{}).low);
  }
  writer.u64(file.sources.size());
  for (const std::string& source : file.sources) writer.text(source);
  return std::move(writer).take();
}

template <class = void>
WrittenFile decode_written_file(std::string_view bytes) {
  WireReader reader(bytes);
  WrittenFile file;
  file.name = reader.text();
  file.bytes = reader.u64();
  file.header_xxh3 = reader.u64();
  file.pieces.resize(reader.u64());
  for (WrittenFile::Piece& piece : file.pieces) {
    piece.stored_name = reader.text();
    piece.codec = reader.text();
    piece.stored_bytes = reader.u64();
    piece.xxh3 = reader.u64();
    const bool encoded = reader.u64() != 0;
    const std::uint64_t raw = reader.u64();
    if (encoded) piece.raw_xxh3 = raw;
    const bool referenced = reader.u64() != 0;
    ContentHash hash;
    hash.high = reader.u64();
    hash.low = reader.u64();
    if (referenced) piece.xxh128 = hash;
  }
  file.sources.resize(reader.u64());
  for (std::string& source : file.sources) source = reader.text();
  reader.expect_end();
  return file;
}

// A tensor of a ckpt file as its header records it.
struct RecordedTensor {
  DType dtype = DType::U8;  // logical dtype and shape
  Shape shape;
  std::string codec;
  std::uint64_t xxh3 = 0;  // of the stored bytes
  std::optional<std::uint64_t> raw_xxh3;
  std::uint64_t stored_bytes = 0;
};

// "F32 [4, 8] (codec raw, xxh3 0123456789abcdef)".
template <class = void>
std::string recorded_text(const RecordedTensor& tensor) {
  return join({dtype_name(tensor.dtype), " ", shape_to_string(tensor.shape), " (codec ", tensor.codec, ", xxh3 ",
               checksum_to_hex(tensor.xxh3), ")"});
}

// Every tensor of an open ckpt file with the checksums its header records
// (none for a file not written by ckpt), and each tensor it references (an
// incremental checkpoint's) with codec reference_codec and no checksum.
template <class = void>
std::map<std::string, RecordedTensor> recorded_tensors(const Reader& reader) {
  std::map<std::string, RecordedTensor> tensors;
  const auto records = reader.raw_metadata().find(keys::tensors);
  if (records == reader.raw_metadata().end()) return tensors;
  // The Reader validated this text; parsed with the parser that read it, so
  // that a program compiles one JSON parser.
  std::string problem;
  const nlohmann::json parsed =
      parse_strict_json(records->second, max_header_depth, records->second.size(), problem).value();
  for (const TensorInfo& info : reader.tensors()) {
    if (!info.stored_in.empty()) {  // referenced: its file's record is the source's
      tensors[info.name] = {info.dtype, info.shape, reference_codec, 0, std::nullopt, 0};
      continue;
    }
    const nlohmann::json& record = parsed.at(info.name);
    RecordedTensor& tensor = tensors[info.name];
    tensor = {info.dtype,   info.shape,
              info.codec,   checksum_from_hex(record.at("xxh3").get<std::string>()).value_or(0),
              std::nullopt, info.stored_bytes};
    if (record.contains("raw_xxh3")) tensor.raw_xxh3 = checksum_from_hex(record.at("raw_xxh3").get<std::string>());
  }
  return tensors;
}

// The error for an open file that is not the one the index committed, or nullopt: its
// header checksum covers every tensor's checksum, so it pins the whole file.
template <class = void>
std::optional<IntegrityError> committed_file_problem(const Reader& reader, const IndexFile& expected) {
  const auto found = reader.raw_metadata().find(keys::header_checksum);
  const std::string found_text = found == reader.raw_metadata().end() ? "none (not a ckpt file)" : found->second;
  if (found_text == checksum_to_hex(expected.header_xxh3) && reader.file_size() == expected.bytes) return std::nullopt;
  return IntegrityError(ErrorId::integrity_header_checksum, reader.path(), "",
                        join({"expected the file the index committed, of ", expected.bytes, " bytes with header xxh3 ",
                              checksum_to_hex(expected.header_xxh3), ", found ", reader.file_size(),
                              " bytes with header xxh3 ", found_text, ": the file was replaced after the commit"}));
}

// fsync of a file by name (its data and size), through the FileSystem seam.
template <class = void>
void fsync_file(const std::string& path) {
  FileSystem& fs = file_system();
  const int fd = fs.open(path.c_str(), O_RDONLY | O_CLOEXEC, 0);
  if (fd < 0) throw_system_error(ErrorId::io_sync, path, "opening the file to fsync it", errno);
  if (fs.fsync(fd) != 0) {
    const int error = errno;
    fs.close(fd);
    throw_system_error(ErrorId::io_sync, path, "fsync", error);
  }
  fs.close(fd);
}

// Writes `tensors` as the file `name` of `directory`, with the references
// and content hashes of `content` (an incremental save: `tensors` are then
// the pieces it leaves to store, distributed/incremental.hpp), and reads
// back what the index records of it. The file is renamed into place before its data is
// fsynced, and its directory entry is left for the coordinator's one fsync
// of the directory before the commit: nothing names the file before the
// index does, and the index is written only once every rank's fsync
// returned, so durability costs each rank one fsync, as a raw write would.
template <class = void>
WrittenFile write_rank_file(const std::string& directory, const std::string& name,
                            const std::vector<NamedTensor>& tensors, const SaveOptions& options,
                            const ContentPlan<>& content) {
  const std::string path = join({directory, "/", name});
  SaveOptions unsynced = options;
  unsynced.durable = false;
  write_content_plan(path, tensors, nlohmann::json::object(), unsynced, content, nullptr,
                     options.durable ? DataSync::by_caller : DataSync::by_options);
  if (options.durable) fsync_file(path);
  // The header is in the page cache: reading it back costs a parse, and
  // takes the checksums exactly as the file records them.
  const Reader reader(path, ReadOptions{false, 1});
  WrittenFile file;
  file.name = name;
  file.bytes = reader.file_size();
  file.header_xxh3 = checksum_from_hex(reader.raw_metadata().at(keys::header_checksum)).value_or(0);
  std::map<std::string, ContentHash> referenced;
  if (content.chain) {
    for (const TensorReference& reference : content.chain->references) referenced[reference.name] = reference.hash;
    for (const ChainFile& source : content.chain->sources) file.sources.push_back(source.file);
  }
  for (const auto& [stored_name, tensor] : recorded_tensors(reader)) {
    std::optional<ContentHash> hash;
    if (tensor.codec == reference_codec) hash = referenced.at(stored_name);
    file.pieces.push_back({stored_name, tensor.codec, tensor.stored_bytes, tensor.xxh3, tensor.raw_xxh3, hash});
  }
  return file;
}

// Writes the index: temp file, fsync, rename, fsync of the directory. The
// rename is the commit of the whole checkpoint.
template <class = void>
void write_index(const std::string& directory, const CheckpointIndex& index, bool durable) {
  const std::string text = index_to_json(index);
  AtomicFile file(index_path_of(directory));
  file.write(text.data(), text.size());
  file.commit(durable);
}

// Removes `path` if it is there; for cleaning up after a failure, which must
// not hide the failure being reported.
template <class = void>
void remove_quietly(const std::string& path) noexcept {
  file_system().unlink(path.c_str());
}

// Reads the index of a committed checkpoint. A directory without one was
// never committed and is refused.
template <class = void>
CheckpointIndex read_index_of(const std::string& directory) {
  if (!is_directory(directory)) {
    throw StateError(ErrorId::state_not_found, directory, "", "expected a checkpoint directory, found none");
  }
  const std::string path = index_path_of(directory);
  if (!path_exists(path)) {
    throw StateError(ErrorId::state_uncommitted, directory, "",
                     join({"expected ", distributed_index_file,
                           ", found none: the save that wrote this directory never committed (it failed or was "
                           "killed); the next save to this directory removes what it left"}));
  }
  return IndexParser<>(path).parse(read_whole_file(path));
}

// Removes a checkpoint directory: the index first (so that a crash halfway
// leaves an uncommitted directory, never a committed one with files
// missing), then the files, then the directory if nothing else is in it.
template <class = void>
void remove_checkpoint_directory(const std::string& directory, bool durable) {
  const std::string index_path = index_path_of(directory);
  if (path_exists(index_path)) {
    remove_file(index_path);
    if (durable) fsync_directory(directory);
  }
  for (const std::string& path : checkpoint_files_in(directory)) remove_file(path);
  file_system().rmdir(directory.c_str());  // fails, harmlessly, when other files remain
}

}  // namespace ckpt::detail

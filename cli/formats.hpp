#pragma once

// The file formats the ckpt tool reads and writes: ckpt / safetensors, NumPy
// (.npz) and HDF5. An input's format is recognised by its content (see
// file_signature.hpp), its extension serving only when the content is not
// recognised; an output's format is chosen by its extension.

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "ckpt/interop/tensor_set.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"
#include "distributed.hpp"
#include "file_signature.hpp"
#ifdef CKPT_WITH_NPZ
#include "ckpt/interop/npz.hpp"
#endif
#ifdef CKPT_WITH_HDF5
#include "ckpt/interop/hdf5.hpp"
#endif

namespace ckpt::cli {

inline constexpr std::string_view known_extensions = ".safetensors, .ckpt, .npz, .h5 or .hdf5";

inline bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

inline std::optional<FileFormat> format_by_extension(std::string_view path) {
  if (ends_with(path, ".safetensors") || ends_with(path, ".ckpt")) return FileFormat::safetensors;
  if (ends_with(path, ".npz")) return FileFormat::npz;
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) return FileFormat::hdf5;
  return std::nullopt;
}

// Whether this build of the tool reads and writes `format` (.npz needs
// libzip, HDF5 the HDF5 library).
inline bool is_supported([[maybe_unused]] FileFormat format) {
#ifndef CKPT_WITH_NPZ
  if (format == FileFormat::npz) return false;
#endif
#ifndef CKPT_WITH_HDF5
  if (format == FileFormat::hdf5) return false;
#endif
  return true;
}

inline FileFormat require_supported(FileFormat format, const std::string& path) {
  if (!is_supported(format)) {
    throw UsageError("'" + path + "': this ckpt tool was built without " +
                     (format == FileFormat::npz ? ".npz support (libzip)" : "HDF5 support"));
  }
  return format;
}

// How a file is read: as its content shows. The extension serves when the
// content is not recognised, so that a .safetensors file damaged at its start
// is reported as corrupt by the reader rather than as of unknown format. A
// directory a distributed save wrote is read as one checkpoint.
inline FileFormat input_format(const std::string& path) {
  if (is_checkpoint_directory(path)) return FileFormat::distributed;
  std::optional<FileFormat> format = format_by_content(path);
  if (!format) format = format_by_extension(path);
  if (!format) {
    throw UsageError("'" + path + "': unknown format: its content is not safetensors, a zip (.npz) or HDF5, " +
                     "and its name does not end in " + std::string(known_extensions));
  }
  return require_supported(*format, path);
}

// How a file is written: as its extension says.
inline FileFormat output_format(const std::string& path) {
  const std::optional<FileFormat> format = format_by_extension(path);
  if (!format) {
    throw UsageError("'" + path + "': unknown format for an output; its name must end in " +
                     std::string(known_extensions));
  }
  return require_supported(*format, path);
}

// "raw" or "deflate[:LEVEL]", the codecs of the container formats.
struct DeflateChoice {
  bool compress = false;
  int level = 0;
};

inline DeflateChoice parse_deflate_codec(const std::string& spec, int default_level) {
  if (spec == "raw") return {};
  const std::string prefix = "deflate";
  if (spec.compare(0, prefix.size(), prefix) != 0) {
    throw UsageError("codec '" + spec + "' does not apply to .npz / .h5 files; expected raw or deflate[:1-9]");
  }
  if (spec.size() == prefix.size()) return {true, default_level};
  const std::string level = spec.substr(prefix.size());
  if (level.size() != 2 || level[0] != ':' || level[1] < '1' || level[1] > '9') {
    throw UsageError("codec '" + spec + "': expected deflate:LEVEL with LEVEL 1 to 9");
  }
  return {true, level[1] - '0'};
}

// Checks a --codec value before any work is done.
inline void check_codec(FileFormat format, const std::string& spec) {
  if (format != FileFormat::safetensors) {
    parse_deflate_codec(spec, 0);
    return;
  }
  try {
    CodecRegistry::instance().make(spec);
  } catch (const Error& error) {
    throw UsageError(std::string("--codec: ") + error.what());
  }
}

// Foreign safetensors files carry only __metadata__ strings, which then
// serve as the metadata.
inline nlohmann::json metadata_of(const Reader& reader) {
  if (reader.written_by_ckpt()) return reader.metadata();
  nlohmann::json metadata = nlohmann::json::object();
  for (const auto& [key, value] : reader.raw_metadata()) metadata[key] = value;
  return metadata;
}

// Told of the stored bytes of each tensor read, for a progress line.
using BytesRead = std::function<void(std::uint64_t bytes)>;

// All tensors of a ckpt / safetensors file; raw ones stay in the mapping.
// Tensors are read (verified, decoded) in parallel; `read` hears of each in
// turn.
inline TensorSet tensors_of(const Reader& reader, const BytesRead& read = nullptr) {
  TensorSet set;
  const std::vector<TensorInfo>& infos = reader.tensors();
  for (const TensorInfo& info : infos) set.tensors.emplace_back(info.name, Tensor());
  std::mutex progress;
  detail::parallel_for(infos.size(), reader.options().threads, [&](std::size_t i) {
    set.tensors[i].second = reader.tensor(infos[i].name);
    const std::lock_guard<std::mutex> lock(progress);
    if (read) read(infos[i].stored_bytes);
  });
  set.metadata = metadata_of(reader);
  return set;
}

// `read` hears of each tensor of a ckpt / safetensors file; .npz and HDF5
// files are loaded whole.
inline TensorSet load_tensors(const std::string& path, FileFormat format, const BytesRead& read = nullptr) {
  switch (format) {
#ifdef CKPT_WITH_NPZ
    case FileFormat::npz: return load_npz(path);
#endif
#ifdef CKPT_WITH_HDF5
    case FileFormat::hdf5: return load_hdf5(path);
#endif
    case FileFormat::distributed: return load_checkpoint_directory(path);
    default: return tensors_of(Reader(path), read);
  }
}

inline void save_tensors(const std::string& path, FileFormat format, const TensorSet& set, const std::string& codec) {
  switch (format) {
#ifdef CKPT_WITH_NPZ
    case FileFormat::npz: {
      const DeflateChoice deflate = parse_deflate_codec(codec, 0);
      save_npz(path, set.views(), set.metadata, NpzOptions{deflate.compress, deflate.level});
      return;
    }
#endif
#ifdef CKPT_WITH_HDF5
    case FileFormat::hdf5: {
      const DeflateChoice deflate = parse_deflate_codec(codec, 4);
      save_hdf5(path, set.views(), set.metadata, Hdf5Options{deflate.compress ? deflate.level : -1});
      return;
    }
#endif
    default: {
      SaveOptions options;
      options.codecs = CodecPolicy(codec);
      write_checkpoint(path, set.views(), set.metadata, options);
    }
  }
}

}  // namespace ckpt::cli

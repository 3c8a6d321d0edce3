#pragma once

// The file formats the ckpt tool reads and writes, chosen by extension:
// ckpt / safetensors (.safetensors, .ckpt), NumPy (.npz) and HDF5 (.h5, .hdf5).

#include <optional>
#include <string>
#include <string_view>

#include "args.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/interop/tensor_set.hpp"
#include "ckpt/writer.hpp"
#ifdef CKPT_WITH_NPZ
#include "ckpt/interop/npz.hpp"
#endif
#ifdef CKPT_WITH_HDF5
#include "ckpt/interop/hdf5.hpp"
#endif

namespace ckpt::cli {

enum class FileFormat { safetensors, npz, hdf5 };

inline bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

inline FileFormat format_of(const std::string& path) {
  if (ends_with(path, ".safetensors") || ends_with(path, ".ckpt")) return FileFormat::safetensors;
  if (ends_with(path, ".npz")) {
#ifdef CKPT_WITH_NPZ
    return FileFormat::npz;
#else
    throw UsageError("'" + path + "': this ckpt tool was built without .npz support (libzip)");
#endif
  }
  if (ends_with(path, ".h5") || ends_with(path, ".hdf5")) {
#ifdef CKPT_WITH_HDF5
    return FileFormat::hdf5;
#else
    throw UsageError("'" + path + "': this ckpt tool was built without HDF5 support");
#endif
  }
  throw UsageError("'" + path + "': unknown format; expected .safetensors, .ckpt, .npz, .h5 or .hdf5");
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

// All tensors of a ckpt / safetensors file; raw ones stay in the mapping.
inline TensorSet tensors_of(const Reader& reader) {
  TensorSet set;
  for (const TensorInfo& info : reader.tensors()) set.tensors.emplace_back(info.name, reader.tensor(info.name));
  set.metadata = metadata_of(reader);
  return set;
}

inline TensorSet load_tensors(const std::string& path) {
  switch (format_of(path)) {
#ifdef CKPT_WITH_NPZ
    case FileFormat::npz: return load_npz(path);
#endif
#ifdef CKPT_WITH_HDF5
    case FileFormat::hdf5: return load_hdf5(path);
#endif
    default: return tensors_of(Reader(path));
  }
}

inline void save_tensors(const std::string& path, const TensorSet& set, const std::string& codec) {
  switch (format_of(path)) {
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

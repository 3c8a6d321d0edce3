#pragma once

// HDF5 export and import through the HDF5 C library: one dataset per tensor
// ("a/b/c" becomes dataset c in group a/b), the checkpoint metadata as
// attributes of the root group. h5py reads these files as numpy arrays.
//
// Optional adapter: include it only when linking ckpt::hdf5. BF16 and F8
// tensors, which HDF5 and numpy cannot represent, are stored as their raw
// bits (uint16 / uint8) with the attribute "__ckpt_dtype__" naming the real
// type. See docs/interop.md.
//
// The HDF5 library is not hardened against hostile files; import only files
// you would open with h5py.
//
// HDF5 opens, reads and writes its files itself, the one exception to ckpt's
// file-system seam (detail/os/file_system.hpp): the seam sees the stat before
// an import and, around an export, the temp file's creation, its fsync, the
// rename and the directory fsync, but not HDF5's own reads and writes.

#include <hdf5.h>
#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/interop/hdf5_objects.hpp"
#include "ckpt/detail/os/atomic_file.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/interop/tensor_set.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct Hdf5Options {
  int deflate_level = -1;  // -1: contiguous, uncompressed datasets; 0..9: chunked with gzip
  bool durable = true;     // fsync the file and its directory
};

// Writes one dataset per tensor and the metadata as root attributes.
// Atomic like write_checkpoint: a temp file renamed over `path` when complete.
inline void save_hdf5(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const nlohmann::json& metadata = nlohmann::json::object(), const Hdf5Options& options = {}) {
  detail::check_tensor_arguments(path, tensors);
  const detail::Hdf5QuietErrors quiet;
  detail::AtomicFile temp(path);
  {
    detail::Hdf5Id file(detail::hdf5_check(H5Fcreate(temp.temp_path().c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT),
                                           ErrorId::io_open, path, "", "creating the file"),
                        H5Fclose);
    for (const NamedTensor& tensor : tensors)
      detail::write_hdf5_dataset(file.get(), tensor, options.deflate_level, path);
    detail::write_hdf5_metadata(file.get(), metadata, path);
    detail::hdf5_check(H5Fflush(file.get(), H5F_SCOPE_GLOBAL), ErrorId::io_write, path, "", "flushing the file");
  }
  temp.commit(options.durable);
}

// Reads every dataset of a supported element type (in name order) and the
// root attributes; datasets of other types (strings, compounds) are refused.
inline TensorSet load_hdf5(const std::string& path) {
  const detail::Hdf5QuietErrors quiet;
  struct stat file_stat {};
  if (detail::file_system().stat(path.c_str(), &file_stat) != 0) {
    detail::throw_system_error(ErrorId::io_open, path, "open", errno);
  }
  if (H5Fis_hdf5(path.c_str()) <= 0) {
    H5Eclear2(H5E_DEFAULT);
    throw FormatError(ErrorId::format_header_size, path, "", "not an HDF5 file");
  }
  detail::Hdf5Id file(detail::hdf5_check(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), ErrorId::io_open, path, "",
                                         "opening the file"),
                      H5Fclose);
  std::vector<std::string> names;
  detail::hdf5_check(H5Lvisit(file.get(), H5_INDEX_NAME, H5_ITER_INC, detail::collect_hdf5_dataset, &names),
                     ErrorId::format_tensor_entry, path, "", "listing the datasets");
  TensorSet set;
  for (const std::string& name : names) {
    set.tensors.emplace_back(
        name, detail::read_hdf5_dataset(file.get(), name, static_cast<std::uint64_t>(file_stat.st_size), path));
  }
  set.metadata = detail::read_hdf5_metadata(file.get(), path);
  return set;
}

}  // namespace ckpt

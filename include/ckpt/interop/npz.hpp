#pragma once

// NumPy .npz export and import, for the files np.savez (stored members) and
// np.savez_compressed (deflated members) write and np.load reads.
//
// Optional adapter: include it only when linking ckpt::npz (libzip).
// Types NumPy lacks (BF16, F8_E4M3, F8_E5M2) are stored as their raw bits
// ('<u2' / '|u1'); the member "__ckpt__.json" records their real dtypes and
// the checkpoint metadata, so a round trip through .npz is exact. See
// docs/interop.md.

#include <zip.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/interop/npy.hpp"
#include "ckpt/detail/interop/npz_archive.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/interop/tensor_set.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct NpzOptions {
  bool compress = false;  // deflate members like np.savez_compressed
  int level = 0;          // deflate level 1..9; 0 = zlib's default
  bool durable = true;    // fsync the file and its directory
};

// Writes `tensors` as NAME.npy members. Atomic like write_checkpoint: the
// archive goes to a temp file renamed over `path` when complete (with
// `durable`, fsynced before the rename and the directory after it), so a
// failed save leaves `path` as it was.
inline void save_npz(const std::string& path, const std::vector<NamedTensor>& tensors,
                     const nlohmann::json& metadata = nlohmann::json::object(), const NpzOptions& options = {}) {
  detail::check_tensor_arguments(path, tensors);
  detail::NpzFileTarget target(path, options.durable);
  detail::ZipArchive archive = target.create_archive();  // destroyed before `target`

  // libzip reads the sources at zip_close, so every buffer lives until then.
  std::vector<std::string> headers;
  headers.reserve(tensors.size());
  nlohmann::json real_dtypes = nlohmann::json::object();
  auto add_member = [&](const std::string& member_name, const std::string& tensor,
                        std::vector<zip_buffer_fragment_t> fragments) {
    zip_error_t error;
    zip_error_init(&error);
    zip_source_t* source = zip_source_buffer_fragment_create(fragments.data(), fragments.size(), 0, &error);
    if (!source) detail::throw_zip_error(&error, path, tensor, "adding member");
    const zip_int64_t index = zip_file_add(archive.get(), member_name.c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      detail::throw_zip_error(zip_get_error(archive.get()), path, tensor, "adding member");
    }
    const zip_int32_t method = options.compress ? ZIP_CM_DEFLATE : ZIP_CM_STORE;
    if (zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), method,
                                 static_cast<zip_uint32_t>(options.level)) != 0) {
      detail::throw_zip_error(zip_get_error(archive.get()), path, tensor, "setting compression");
    }
  };
  for (const NamedTensor& tensor : tensors) {
    const TensorView& view = tensor.view;
    headers.push_back(detail::npy_header(view.dtype(), view.shape()));
    if (detail::npy_storage_dtype(view.dtype()) != view.dtype()) real_dtypes[tensor.name] = dtype_name(view.dtype());
    std::vector<zip_buffer_fragment_t> fragments{
        {reinterpret_cast<zip_uint8_t*>(headers.back().data()), headers.back().size()}};
    if (view.nbytes() != 0) {
      fragments.push_back({reinterpret_cast<zip_uint8_t*>(const_cast<std::byte*>(view.data())), view.nbytes()});
    }
    add_member(detail::join({tensor.name, ".npy"}), tensor.name, std::move(fragments));
  }
  std::string sidecar;
  if (!real_dtypes.empty() || (!metadata.is_null() && !metadata.empty())) {
    sidecar =
        nlohmann::json{{"format", "ckpt.npz"}, {"version", 1}, {"dtypes", real_dtypes}, {"metadata", metadata}}.dump();
    add_member(npz_sidecar_name, "", {{reinterpret_cast<zip_uint8_t*>(sidecar.data()), sidecar.size()}});
  }
  if (zip_close(archive.get()) != 0) target.throw_failure(zip_get_error(archive.get()), "writing archive");
  archive.release();  // zip_close freed it
}

// Reads every NAME.npy member of an .npz (from np.savez, np.savez_compressed
// or save_npz) in archive order. CRC-32s are checked; Fortran-order arrays
// are reordered to C order; members the format cannot hold are refused.
inline TensorSet load_npz(const std::string& path) {
  const detail::MappedFile file(path);  // outlives the archive, which reads from it
  detail::ZipArchive archive = detail::open_mapped_archive(file);
  const std::uint64_t file_size = file.size();
  auto open_member = [&](zip_uint64_t index, const std::string& tensor, zip_stat_t& stat) {
    if (zip_stat_index(archive.get(), index, 0, &stat) != 0) {
      detail::throw_zip_error(zip_get_error(archive.get()), path, tensor, detail::join({"reading member ", index}));
    }
    return detail::NpzMemberReader(archive.get(), index, stat, file_size, path, tensor);
  };

  // The sidecar comes last in the archive but says how to read the members.
  TensorSet set;
  detail::NpzSidecar sidecar;
  const zip_int64_t sidecar_index = zip_name_locate(archive.get(), npz_sidecar_name, 0);
  if (sidecar_index >= 0) {
    zip_stat_t stat;
    detail::NpzMemberReader member = open_member(static_cast<zip_uint64_t>(sidecar_index), "", stat);
    if (stat.size > detail::npz_max_sidecar_bytes) {
      member.fail_format(
          detail::join({"expected a sidecar of at most ", detail::npz_max_sidecar_bytes, " bytes, found ", stat.size}));
    }
    std::string text(stat.size, '\0');
    member.read(text.data(), text.size());
    member.finish();
    sidecar = detail::parse_npz_sidecar(text, path);
    set.metadata = std::move(sidecar.metadata);
  }

  std::set<std::string> seen;
  const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
  for (zip_int64_t i = 0; i < count; ++i) {
    if (i == sidecar_index) continue;
    zip_stat_t stat;
    const char* member_name = zip_get_name(archive.get(), static_cast<zip_uint64_t>(i), 0);
    const std::string tensor = member_name ? detail::npz_tensor_name(member_name) : "";
    if (tensor.empty()) {
      throw FormatError(
          ErrorId::format_tensor_entry, path, "",
          detail::join({"member ", i, " ('", (member_name ? member_name : ""), "') is not a NAME.npy array"}));
    }
    if (!seen.insert(tensor).second) {
      throw FormatError(ErrorId::format_tensor_entry, path, tensor,
                        detail::join({"duplicate member '", tensor, ".npy'"}));
    }
    detail::NpzMemberReader member = open_member(static_cast<zip_uint64_t>(i), tensor, stat);
    const auto real_dtype = sidecar.real_dtypes.find(tensor);
    set.tensors.emplace_back(
        tensor, detail::read_npy_member(
                    member, path, tensor,
                    real_dtype == sidecar.real_dtypes.end() ? std::nullopt : std::optional(real_dtype->second)));
  }
  for (const auto& entry : sidecar.real_dtypes) {
    if (!seen.count(entry.first)) {
      throw FormatError(ErrorId::format_metadata, path, entry.first,
                        detail::join({npz_sidecar_name, " names a tensor the archive does not hold"}));
    }
  }
  return set;
}

}  // namespace ckpt

#pragma once

// What the loading archives of one file (describe.hpp) and of a distributed
// checkpoint (detail/distributed/archives.hpp) share: whether each tensor or
// metadata value the state describes can load from what the checkpoint
// holds, and the walk's handling of metadata values and containers.

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/state/archive.hpp"
#include "ckpt/detail/state/file_names.hpp"
#include "ckpt/detail/state/metadata_value.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/load_report.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt {

namespace detail {

// Whether a tensor the state expects (`expected`) can load from the one the
// file has (`found`, null when absent); if not, the problem is recorded in
// `report`. `any_dtype`: the target takes the file's dtype; `takes_file_shape`:
// an empty resizable target takes the file's shape.
inline bool tensor_loadable(LoadReport& report, const std::string& name, const TensorLayout& expected,
                            const TensorLayout* found, bool any_dtype, bool takes_file_shape) {
  if (found == nullptr) {
    report.missing.push_back(join({name, ": tensor ", layout_text(expected.dtype, expected.shape)}));
    return false;
  }
  if (!any_dtype && found->dtype != expected.dtype) {
    report.dtype_mismatch.push_back(
        join({name, ": expected ", dtype_name(expected.dtype), ", found ", dtype_name(found->dtype)}));
    return false;
  }
  if (!takes_file_shape && found->shape != expected.shape) {
    report.shape_mismatch.push_back(
        join({name, ": expected ", shape_to_string(expected.shape), ", found ", shape_to_string(found->shape)}));
    return false;
  }
  return true;
}

// The metadata value `name` of the file's metadata `all` as a T, or nullopt
// with the problem recorded in `report`.
template <class T>
std::optional<T> loadable_metadata(LoadReport& report, const std::string& name, const nlohmann::json& all,
                                   const FileNames& file_names) {
  if (!file_names.has_metadata(name)) {
    report.missing.push_back(join({name, ": metadata ", metadata_kind<T>()}));
    return std::nullopt;
  }
  const nlohmann::json& stored = all.at(name);
  std::optional<T> parsed = from_metadata<T>(stored);
  if (!parsed) {
    report.dtype_mismatch.push_back(
        join({name, ": expected metadata ", metadata_kind<T>(), ", found ", metadata_excerpt(stored)}));
  }
  return parsed;
}

// What the loading archives of one file (LoadingArchive below) and of a
// distributed checkpoint (detail/distributed/archives.hpp) share: the
// problems found, the loads planned in describe() order (`Load`: a
// std::function of whatever the archive runs them with), and how metadata
// values and containers take what the checkpoint holds.
template <class Derived, class Load>
class LoadingArchiveBase : public ArchiveBase<Derived> {
 protected:
  // `metadata`, the checkpoint's, must outlive the archive.
  LoadingArchiveBase(std::string file, std::set<std::string> tensor_names, const nlohmann::json& metadata)
      : ArchiveBase<Derived>(std::move(file)),
        metadata_(metadata),
        file_names_(std::move(tensor_names), metadata_names(metadata)) {}

  LoadReport report_;
  std::vector<Load> loads_;

 private:
  friend class ArchiveBase<Derived>;

  template <class T>
  void metadata(T& value) {
    const std::string name = this->register_name("metadata");
    std::optional<T> parsed = loadable_metadata<T>(report_, name, metadata_, file_names_);
    if (!parsed) return;
    loads_.push_back([&value, parsed = std::move(*parsed)](auto&...) { value = parsed; });
  }

  // Containers take the shape the checkpoint gives them (see file_names.hpp);
  // entries it lacks are reported missing.
  template <class Map>
  void prepare_map(Map& map) {
    file_names_.adopt_map_keys(map, this->current_name());
  }
  template <class Sequence>
  void prepare_sequence(Sequence& sequence) {
    file_names_.size_sequence(sequence, this->current_name());
  }
  template <class T>
  bool prepare_optional(std::optional<T>& optional) {
    return file_names_.prepare_optional(optional, this->current_name(),
                                        [&] { loads_.push_back([&optional](auto&...) { optional.reset(); }); });
  }

  static std::set<std::string> metadata_names(const nlohmann::json& metadata) {
    std::set<std::string> names;
    if (metadata.is_object()) {
      for (const auto& entry : metadata.items()) names.insert(entry.key());
    }
    return names;
  }

  const nlohmann::json& metadata_;
  FileNames file_names_;
};

}  // namespace detail

}  // namespace ckpt

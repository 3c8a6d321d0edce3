#pragma once

// One description of a state serves saving and loading. A type describes its
// parts by name, either as a member
//
//   template <class Archive> void describe(Archive& ar) { ar("weight", weight); ar("step", step); }
//
// or as a non-member in the type's namespace (found by argument-dependent lookup)
//
//   template <class Archive> void describe(Archive& ar, Layer& layer) { ar("weight", layer.weight); }
//
// Names nest with '/': a Model described as "model" holding a Layer described
// as "fc1" gives "model/fc1/weight". Tensors (see tensor_traits.hpp) become
// tensors of the file; scalars, enums, std::string, nlohmann::json and random
// engines go to its JSON metadata. std::map / std::unordered_map from
// std::string, std::vector / std::array of non-element values and
// std::optional nest their contents.

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/state/archive.hpp"
#include "ckpt/detail/state/file_names.hpp"
#include "ckpt/detail/state/metadata_value.hpp"
#include "ckpt/error.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt {

// What a save of a state writes.
struct CollectedState {
  std::vector<NamedTensor> tensors;  // views into the state (or into `owned`)
  // Flat: hierarchical name -> value. (value_t::object rather than
  // json::object(): see "Compile time" in docs/architecture.md.)
  nlohmann::json metadata = nlohmann::json(nlohmann::json::value_t::object);
  std::vector<Tensor> owned;  // converted tensors the views point into
};

// How a checkpoint file differs from the state it is loaded into. Each entry
// is one line that starts with the tensor or metadata name.
struct LoadReport {
  std::vector<std::string> missing;         // described by the state, absent from the file
  std::vector<std::string> unexpected;      // tensors in the file that the state does not describe
  std::vector<std::string> dtype_mismatch;  // wrong dtype, or a metadata value of the wrong type
  std::vector<std::string> shape_mismatch;

  std::size_t problem_count() const noexcept {
    return missing.size() + unexpected.size() + dtype_mismatch.size() + shape_mismatch.size();
  }
  bool ok() const noexcept { return problem_count() == 0; }

  std::string to_string() const {
    if (ok()) return "the checkpoint matches the state";
    std::string text = "the checkpoint does not match the state (" + std::to_string(problem_count()) + " problem" +
                       (problem_count() == 1 ? "" : "s") + ")";
    const auto section = [&text](const char* title, const std::vector<std::string>& lines) {
      if (lines.empty()) return;
      text += "\n  " + std::string(title) + ":";
      for (const std::string& line : lines) text += "\n    " + line;
    };
    section("missing from the file", missing);
    section("in the file but not in the state", unexpected);
    section("wrong dtype", dtype_mismatch);
    section("wrong shape", shape_mismatch);
    return text;
  }
};

namespace detail {

// Whether a tensor the state expects (`expected`) can load from the one the
// file has (`found`, null when absent); if not, the problem is recorded in
// `report`. `any_dtype`: the target takes the file's dtype; `takes_file_shape`:
// an empty resizable target takes the file's shape.
inline bool tensor_loadable(LoadReport& report, const std::string& name, const TensorLayout& expected,
                            const TensorLayout* found, bool any_dtype, bool takes_file_shape) {
  if (found == nullptr) {
    report.missing.push_back(name + ": tensor " + layout_text(expected.dtype, expected.shape));
    return false;
  }
  if (!any_dtype && found->dtype != expected.dtype) {
    report.dtype_mismatch.push_back(name + ": expected " + std::string(dtype_name(expected.dtype)) + ", found " +
                                    std::string(dtype_name(found->dtype)));
    return false;
  }
  if (!takes_file_shape && found->shape != expected.shape) {
    report.shape_mismatch.push_back(name + ": expected " + shape_to_string(expected.shape) + ", found " +
                                    shape_to_string(found->shape));
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
    report.missing.push_back(name + ": metadata " + metadata_kind<T>());
    return std::nullopt;
  }
  const nlohmann::json& stored = all.at(name);
  std::optional<T> parsed = from_metadata<T>(stored);
  if (!parsed) {
    report.dtype_mismatch.push_back(name + ": expected metadata " + metadata_kind<T>() + ", found " +
                                    metadata_excerpt(stored));
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

// Collects what a save writes: views of the state's tensors (no copy) and its
// metadata. It never writes to the state it walks.
class SavingArchive : public detail::ArchiveBase<SavingArchive> {
 public:
  static constexpr bool is_saving = true;
  static constexpr bool is_loading = false;

  // `file` is named in errors (empty when there is none yet). A template for
  // the reason LoadingArchive's members are.
  template <class = void>
  explicit SavingArchive(std::string file = {}) : ArchiveBase(std::move(file)) {}

  CollectedState take() && { return std::move(collected_); }

 private:
  friend class detail::ArchiveBase<SavingArchive>;

  template <bool Temporary, class T>
  void tensor(T& value) {
    std::string name = register_name("tensor");
    TensorView view =
        detail::with_tensor_name(file(), name, [&] { return detail::saving_view(value, collected_.owned); });
    collected_.tensors.push_back({std::move(name), std::move(view)});
  }
  template <class T>
  void metadata(const T& value) {
    collected_.metadata[register_name("metadata")] = detail::to_metadata(value);
  }
  template <class T>
  void prepare_map(T&) {}
  template <class T>
  void prepare_sequence(T&) {}
  template <class T>
  bool prepare_optional(const std::optional<T>& optional) {
    return optional.has_value();
  }

  CollectedState collected_;
};

// Checks a state against a checkpoint and loads it. Describing the state
// records every problem and plans every load; finish() then either throws
// (strict, with all problems in one error) or performs the loads, reading
// each tensor straight into the state's memory where its traits allow.
class LoadingArchive : public detail::LoadingArchiveBase<LoadingArchive, std::function<void()>> {
 public:
  static constexpr bool is_saving = false;
  static constexpr bool is_loading = true;

  // Templates only so that programs that load nothing do not compile them
  // (see "Compile time" in docs/architecture.md).
  template <class = void>
  explicit LoadingArchive(const Reader& reader)
      : LoadingArchiveBase(reader.path(), tensor_names(reader), reader.metadata()), reader_(reader) {}

  // Strict: throws MismatchError listing every problem and loads nothing.
  // Otherwise loads what matches and returns the problems.
  template <class = void>
  LoadReport finish(bool strict) {
    for (const TensorInfo& info : reader_.tensors()) {
      if (!names().contains(info.name, "tensor")) {
        report_.unexpected.push_back(info.name + ": tensor " + detail::layout_text(info.dtype, info.shape));
      }
    }
    if (strict && !report_.ok()) throw MismatchError(ErrorId::mismatch_state, reader_.path(), "", report_.to_string());
    // The state's own code (traits, resets, metadata) runs on this thread in
    // describe() order: it may share structures (an optimizer's state map)
    // or depend on order. Only then are the bytes read, each into the target
    // its traits gave, in parallel: small tensors one per thread, large ones
    // spread their blocks over the threads too.
    for (const std::function<void()>& load : loads_) load();
    detail::parallel_for(reads_.size(), reader_.options().threads, [this](std::size_t i) { read(reads_[i]); });
    reads_.clear();
    loads_.clear();  // after the reads: a view copied into a load may own what its target points to
    return std::move(report_);
  }

 private:
  friend class detail::ArchiveBase<LoadingArchive>;

  template <bool Temporary, class T>
  void tensor(T& value) {
    static_assert(detail::can_load_tensor_v<T>,
                  "ckpt: tensor_traits<T> needs `static void assign(T&, const Tensor&)` or "
                  "`static void* load_target(T&, const Shape&)` so that T can be loaded");
    const std::string name = register_name("tensor");
    const TensorLayout expected =
        detail::with_tensor_name(file(), name, [&] { return detail::expected_layout(value); });
    const TensorInfo* found = reader_.find(name);
    const TensorLayout found_layout = found != nullptr ? TensorLayout{found->dtype, found->shape} : TensorLayout{};
    const bool takes_file_shape = detail::is_resizable<T>::value && element_count(expected.shape) == 0;
    if (!detail::tensor_loadable(report_, name, expected, found != nullptr ? &found_layout : nullptr,
                                 detail::takes_any_dtype<T>::value, takes_file_shape)) {
      return;
    }
    if constexpr (Temporary) {
      // A view such as ckpt::shaped() dies with the ar() call; keep a copy of it.
      loads_.push_back([this, found, target = value]() mutable { load_tensor(*found, target); });
    } else {
      loads_.push_back([this, found, &value] { load_tensor(*found, value); });
    }
  }

  static std::set<std::string> tensor_names(const Reader& reader) {
    std::set<std::string> names;
    for (const TensorInfo& info : reader.tensors()) names.insert(info.name);
    return names;
  }

  // A tensor's bytes and the memory its traits gave for them.
  struct PendingRead {
    const TensorInfo* info;
    void* out;
  };

  template <class T>
  void load_tensor(const TensorInfo& info, T& target) {
    if constexpr (detail::has_load_target<T>::value) {
      reads_.push_back({&info, tensor_traits<T>::load_target(target, info.shape)});
    } else {
      tensor_traits<T>::assign(target, reader_.tensor(info.name));
    }
  }

  void read(const PendingRead& pending) const {
    const TensorInfo& info = *pending.info;
    const std::uint64_t size = byte_size(info.dtype, info.shape);
    reader_.read_into(info.name, pending.out, size);
    // A file byte other than 0 or 1 must not become an invalid bool.
    if (info.dtype == DType::BOOL) {
      auto* bytes = static_cast<unsigned char*>(pending.out);
      for (std::uint64_t i = 0; i < size; ++i) bytes[i] = bytes[i] != 0 ? 1 : 0;
    }
  }

  const Reader& reader_;
  std::vector<PendingRead> reads_;
};

}  // namespace ckpt

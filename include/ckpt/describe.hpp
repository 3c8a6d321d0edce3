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
    TensorView view = detail::with_tensor_name(file(), name, [&] { return detail::saving_view(value, collected_.owned); });
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
class LoadingArchive : public detail::ArchiveBase<LoadingArchive> {
 public:
  static constexpr bool is_saving = false;
  static constexpr bool is_loading = true;

  // Templates only so that programs that load nothing do not compile them
  // (see "Compile time" in docs/architecture.md).
  template <class = void>
  explicit LoadingArchive(const Reader& reader) : ArchiveBase(reader.path()), reader_(reader) {
    for (const TensorInfo& info : reader.tensors()) tensor_names_.insert(info.name);
    if (reader.metadata().is_object()) {
      for (const auto& entry : reader.metadata().items()) metadata_names_.insert(entry.key());
    }
  }

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
    for (const std::function<void()>& load : loads_) load();
    loads_.clear();
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
    const TensorLayout expected = detail::with_tensor_name(file(), name, [&] { return detail::expected_layout(value); });
    const TensorInfo* found = reader_.find(name);
    if (found == nullptr) {
      report_.missing.push_back(name + ": tensor " + detail::layout_text(expected.dtype, expected.shape));
      return;
    }
    if (!detail::takes_any_dtype<T>::value && found->dtype != expected.dtype) {
      report_.dtype_mismatch.push_back(name + ": expected " + std::string(dtype_name(expected.dtype)) + ", found " +
                                       std::string(dtype_name(found->dtype)));
      return;
    }
    const bool takes_file_shape = detail::is_resizable<T>::value && element_count(expected.shape) == 0;
    if (!takes_file_shape && found->shape != expected.shape) {
      report_.shape_mismatch.push_back(name + ": expected " + shape_to_string(expected.shape) + ", found " +
                                       shape_to_string(found->shape));
      return;
    }
    if constexpr (Temporary) {
      // A view such as ckpt::shaped() dies with the ar() call; keep a copy of it.
      loads_.push_back([this, found, target = value]() mutable { load_tensor(*found, target); });
    } else {
      loads_.push_back([this, found, &value] { load_tensor(*found, value); });
    }
  }

  template <class T>
  void load_tensor(const TensorInfo& info, T& target) const {
    if constexpr (detail::has_load_target<T>::value) {
      const std::uint64_t size = byte_size(info.dtype, info.shape);
      void* out = tensor_traits<T>::load_target(target, info.shape);
      reader_.read_into(info.name, out, size);
      // A file byte other than 0 or 1 must not become an invalid bool.
      if (info.dtype == DType::BOOL) {
        auto* bytes = static_cast<unsigned char*>(out);
        for (std::uint64_t i = 0; i < size; ++i) bytes[i] = bytes[i] != 0 ? 1 : 0;
      }
    } else {
      tensor_traits<T>::assign(target, reader_.tensor(info.name));
    }
  }

  template <class T>
  void metadata(T& value) {
    const std::string name = register_name("metadata");
    const nlohmann::json& all = reader_.metadata();
    if (!metadata_names_.count(name)) {
      report_.missing.push_back(name + ": metadata " + detail::metadata_kind<T>());
      return;
    }
    const nlohmann::json& stored = all.at(name);
    std::optional<T> parsed = detail::from_metadata<T>(stored);
    if (!parsed) {
      report_.dtype_mismatch.push_back(name + ": expected metadata " + detail::metadata_kind<T>() + ", found " +
                                       detail::metadata_excerpt(stored));
      return;
    }
    loads_.push_back([&value, parsed = std::move(*parsed)] { value = parsed; });
  }

  // A map takes the keys the file has under its name (new entries start
  // default-constructed); entries the file lacks are reported missing.
  template <class Map>
  void prepare_map(Map& map) {
    using Entry = typename Map::mapped_type;
    if constexpr (std::is_default_constructible_v<Entry>) {
      // An entry that is itself one tensor or value may have '/' in its key.
      constexpr bool leaf = detail::is_tensor_like_v<Entry> || detail::is_metadata_value_v<Entry>;
      if constexpr (!detail::is_metadata_value_v<Entry>) adopt_keys(map, tensor_names_, leaf);
      if constexpr (!detail::is_tensor_like_v<Entry>) adopt_keys(map, metadata_names_, leaf);
    }
  }
  template <class Map>
  void adopt_keys(Map& map, const std::set<std::string>& file_names, bool whole_rest) {
    for_names_under(file_names, [&](const std::string& rest) {
      std::string key = whole_rest ? rest : rest.substr(0, rest.find('/'));
      // A name no describe() could have written ("buffers/", a NUL byte) is
      // left to be reported as unexpected.
      if (!key.empty() && key.find('\0') == std::string::npos) map.try_emplace(std::move(key));
    });
  }

  // An empty std::vector of sub-states takes as many elements as the file has
  // indices under its name.
  template <class Sequence>
  void prepare_sequence(Sequence& sequence) {
    if constexpr (detail::is_vector<Sequence>::value &&
                  std::is_default_constructible_v<typename Sequence::value_type>) {
      if (!sequence.empty()) return;
      std::set<std::string> indices;
      const auto collect = [&indices](const std::string& rest) {
        const std::string index = rest.substr(0, rest.find('/'));
        const bool canonical = !index.empty() && index.find_first_not_of("0123456789") == std::string::npos &&
                               (index == "0" || index[0] != '0');
        if (canonical) indices.insert(index);
      };
      for_names_under(tensor_names_, collect);
      for_names_under(metadata_names_, collect);
      sequence.resize(indices.size());
    }
  }

  // An optional holds a value exactly when the file has something under its name.
  template <class T>
  bool prepare_optional(std::optional<T>& optional) {
    const std::string name = current_name();
    bool present = tensor_names_.count(name) != 0 || metadata_names_.count(name) != 0;
    const auto mark_present = [&present](const std::string&) { present = true; };
    for_names_under(tensor_names_, mark_present);
    for_names_under(metadata_names_, mark_present);
    if (!present) {
      loads_.push_back([&optional] { optional.reset(); });
      return false;
    }
    if constexpr (std::is_default_constructible_v<T>) {
      if (!optional) optional.emplace();
    }
    return optional.has_value();
  }

  // Calls `function` with the rest of every name under the current one.
  template <class Function>
  void for_names_under(const std::set<std::string>& file_names, Function&& function) const {
    const std::string name = current_name();
    const std::string prefix = name.empty() ? name : name + '/';
    for (auto it = file_names.lower_bound(prefix); it != file_names.end() && it->compare(0, prefix.size(), prefix) == 0;
         ++it) {
      function(it->substr(prefix.size()));
    }
  }

  const Reader& reader_;
  std::set<std::string> tensor_names_;
  std::set<std::string> metadata_names_;
  std::vector<std::function<void()>> loads_;
  LoadReport report_;
};

}  // namespace ckpt

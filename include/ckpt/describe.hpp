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

#include "ckpt/detail/metadata_value.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"
#include "ckpt/writer.hpp"

namespace ckpt {

// What a save of a state writes.
struct CollectedState {
  std::vector<NamedTensor> tensors;                       // views into the state (or into `owned`)
  nlohmann::json metadata = nlohmann::json::object();     // flat: hierarchical name -> value
  std::vector<Tensor> owned;                              // converted tensors the views point into
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

template <class>
inline constexpr bool dependent_false_v = false;

template <class Archive, class T, class = void> struct has_member_describe : std::false_type {};
template <class Archive, class T>
struct has_member_describe<Archive, T, std::void_t<decltype(std::declval<T&>().describe(std::declval<Archive&>()))>>
    : std::true_type {};
// No function named `describe` is declared in ckpt, so this finds only the
// user's, through argument-dependent lookup.
template <class Archive, class T, class = void> struct has_free_describe : std::false_type {};
template <class Archive, class T>
struct has_free_describe<Archive, T, std::void_t<decltype(describe(std::declval<Archive&>(), std::declval<T&>()))>>
    : std::true_type {};
template <class Archive, class T>
void call_free_describe(Archive& archive, T& value) {
  describe(archive, value);
}

template <class T> struct is_string_map : std::false_type {};
template <class V, class Compare, class Allocator>
struct is_string_map<std::map<std::string, V, Compare, Allocator>> : std::true_type {};
template <class V, class Hash, class Equal, class Allocator>
struct is_string_map<std::unordered_map<std::string, V, Hash, Equal, Allocator>> : std::true_type {};

// Containers of sub-states; containers of element types are tensors instead.
template <class T> struct is_sequence : std::false_type {};
template <class V, class Allocator>
struct is_sequence<std::vector<V, Allocator>> : std::bool_constant<!is_element_type_v<V>> {};
template <class V, std::size_t N>
struct is_sequence<std::array<V, N>> : std::bool_constant<!is_element_type_v<V>> {};
template <class T> struct is_vector : std::false_type {};
template <class V, class Allocator> struct is_vector<std::vector<V, Allocator>> : std::true_type {};

template <class T> struct is_optional : std::false_type {};
template <class V> struct is_optional<std::optional<V>> : std::true_type {};

inline std::string layout_text(DType dtype, const Shape& shape) {
  return std::string(dtype_name(dtype)) + " " + shape_to_string(shape);
}

// Errors from tensor_traits hooks know no tensor name; this adds it.
template <class ErrorType>
[[noreturn]] void rethrow_named(const ErrorType& error, const std::string& file, const std::string& tensor) {
  if (!error.tensor().empty()) throw error;
  std::string what = error.what();
  const std::size_t prefix_end = what.find("] ");  // the "[ckpt.kind.id] " prefix; the new error writes its own
  if (prefix_end != std::string::npos) what.erase(0, prefix_end + 2);
  throw ErrorType(error.id(), file, tensor, what);
}
template <class Function>
auto with_tensor_name(const std::string& file, const std::string& tensor, Function&& function)
    -> decltype(function()) {
  try {
    return function();
  } catch (const ArgumentError& error) {
    rethrow_named(error, file, tensor);
  } catch (const MismatchError& error) {
    rethrow_named(error, file, tensor);
  }
}

// Walks a state through describe(): names, nesting and the dispatch on kinds
// of values. `Derived` (the saving or the loading archive) decides what
// happens to each tensor and metadata value.
template <class Derived>
class ArchiveBase {
 public:
  // Describes `value` under `name`, nested in the name being described.
  template <class T>
  Derived& operator()(std::string_view name, T&& value) {
    using Value = std::remove_cv_t<std::remove_reference_t<T>>;
    constexpr bool temporary = !std::is_lvalue_reference_v<T>;
    static_assert(!temporary || is_tensor_like_v<Value>,
                  "ckpt: ar(name, value) needs the member itself (an lvalue) so that a load can write into it; "
                  "temporaries are accepted only for tensor views such as ckpt::shaped(member, shape)");
    static_assert(Derived::is_saving || !std::is_const_v<std::remove_reference_t<T>>,
                  "ckpt: a load cannot write into a const value; pass non-const members to ar(name, value)");
    validate_component(name, path_, file_);
    path_.emplace_back(name);
    // The saving archive only reads, so a const value is fine there.
    visit<temporary>(const_cast<Value&>(value));
    path_.pop_back();
    return derived();
  }

  // Describes a whole state (the root of the names).
  template <class State>
  void visit_root(State& state) {
    visit<false>(state);
  }

 protected:
  explicit ArchiveBase(std::string file) : file_(file), names_(std::move(file)) {}

  const std::string& file() const noexcept { return file_; }
  std::string current_name() const { return join_components(path_); }
  // Registers the name being described as a `kind` ("tensor" or "metadata").
  std::string register_name(const char* kind) { return names_.add(path_, kind); }
  const NameRegistry& names() const noexcept { return names_; }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  template <bool Temporary, class T>
  void visit(T& value) {
    Derived& self = derived();
    if constexpr (is_tensor_like_v<T>) {
      self.template tensor<Temporary>(value);
    } else if constexpr (has_member_describe<Derived, T>::value) {
      static_assert(!has_free_describe<Derived, T>::value,
                    "ckpt: this type has both a member describe() and a non-member describe(); keep one");
      value.describe(self);
    } else if constexpr (has_free_describe<Derived, T>::value) {
      call_free_describe(self, value);
    } else if constexpr (is_metadata_value_v<T>) {
      self.metadata(value);
    } else if constexpr (is_string_map<T>::value) {
      self.prepare_map(value);
      for (auto& [key, entry] : value) (*this)(key, entry);
    } else if constexpr (is_sequence<T>::value) {
      self.prepare_sequence(value);
      for (std::size_t index = 0; index < value.size(); ++index) (*this)(std::to_string(index), value[index]);
    } else if constexpr (is_optional<T>::value) {
      if (self.prepare_optional(value)) visit<false>(*value);
    } else {
      static_assert(dependent_false_v<T>,
                  "ckpt cannot describe this type. Teach it in one of these ways:\n"
                  "  1. a member:      template <class Archive> void describe(Archive& ar) { ar(\"weight\", weight); ... }\n"
                  "  2. a non-member in the type's namespace:\n"
                  "                    template <class Archive> void describe(Archive& ar, YourType& value) { ... }\n"
                  "  3. a tensor type: specialise ckpt::tensor_traits<YourType> (see ckpt/tensor_traits.hpp)\n"
                  "Built in: arithmetic and enum scalars, std::string, nlohmann::json, random engines, std::vector / "
                  "std::array / C arrays of arithmetic types, ckpt::Tensor, std::map<std::string, V>, std::vector<V>, "
                  "std::optional<V>.");
    }
  }

  std::string file_;
  std::vector<std::string> path_;
  NameRegistry names_;
};

}  // namespace detail

// Collects what a save writes: views of the state's tensors (no copy) and its
// metadata. It never writes to the state it walks.
class SavingArchive : public detail::ArchiveBase<SavingArchive> {
 public:
  static constexpr bool is_saving = true;
  static constexpr bool is_loading = false;

  // `file` is named in errors (empty when there is none yet).
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

  explicit LoadingArchive(const Reader& reader) : ArchiveBase(reader.path()), reader_(reader) {
    for (const TensorInfo& info : reader.tensors()) tensor_names_.insert(info.name);
    if (reader.metadata().is_object()) {
      for (const auto& entry : reader.metadata().items()) metadata_names_.insert(entry.key());
    }
  }

  // Strict: throws MismatchError listing every problem and loads nothing.
  // Otherwise loads what matches and returns the problems.
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

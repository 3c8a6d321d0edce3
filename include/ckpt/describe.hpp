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
#include "ckpt/detail/state/loading_archive.hpp"
#include "ckpt/detail/state/metadata_value.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/load_report.hpp"
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
  LoadReport finish(bool strict);

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

  template <class = void>
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

  // A template for the reason finish() is: it reaches the whole reader.
  template <class = void>
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

// In the optional compiled mode (CKPT_COMPILED, README "Compile time") a
// program sees only the declaration of finish(), which reaches the whole
// reader: src/compiled.cpp instantiates it once.
#ifndef CKPT_COMPILED

template <class>
LoadReport LoadingArchive::finish(bool strict) {
  for (const TensorInfo& info : reader_.tensors()) {
    if (!names().contains(info.name, "tensor")) {
      report_.unexpected.push_back(detail::join({info.name, ": tensor ", detail::layout_text(info.dtype, info.shape)}));
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

#endif  // CKPT_COMPILED

}  // namespace ckpt

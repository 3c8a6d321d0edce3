#pragma once

// The walks describe() drives for a distributed checkpoint. Saving collects
// this rank's pieces (shards as described, every other tensor as a whole,
// replicated piece) and the metadata; loading checks each tensor against the
// index (dtype and global shape) and plans to read each piece the state
// wants, whatever split it was saved in.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/describe.hpp"
#include "ckpt/detail/distributed/geometry.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/distributed/piece_reader.hpp"
#include "ckpt/detail/distributed/save_plan.hpp"
#include "ckpt/detail/state/archive.hpp"
#include "ckpt/detail/state/file_names.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt::detail {

template <class T>
inline constexpr bool is_shard_v = std::is_base_of_v<ShardPlacement, T>;

// The local value a shard wraps, with the piece's place, checked.
template <class = void>
void check_shard(const std::string& file, const std::string& name, const ShardPlacement& placement) {
  if (const auto problem = geometry_problem(placement.geometry, placement.shape)) {
    throw ArgumentError(ErrorId::argument_invalid, file, name,
                        join({"a shard of ", shape_to_string(placement.shape), ": ", *problem}));
  }
}

// What this rank contributes to a save.
struct CollectedPieces {
  std::vector<PieceDescription> descriptions;
  std::vector<TensorView> views;  // each piece's bytes, shaped as it is stored (parallel to descriptions)
  std::vector<Tensor> owned;      // converted tensors the views point into
  nlohmann::json metadata = nlohmann::json(nlohmann::json::value_t::object);
};

class DistributedSavingArchive : public ArchiveBase<DistributedSavingArchive> {
 public:
  static constexpr bool is_saving = true;
  static constexpr bool is_loading = false;

  // `directory` is named in errors.
  explicit DistributedSavingArchive(std::string directory) : ArchiveBase(std::move(directory)) {}

  template <class = void>
  CollectedPieces take() && {
    return std::move(collected_);
  }

 private:
  friend class ArchiveBase<DistributedSavingArchive>;

  template <bool Temporary, class T>
  void tensor(T& value) {
    std::string name = register_name("tensor");
    with_tensor_name(file(), name, [&] {
      if constexpr (is_shard_v<T>) {
        check_shard(file(), name, value);
        const TensorView local = saving_view(value.local(), collected_.owned);
        const std::uint64_t expected = value.geometry.element_count();
        if (local.numel() != expected) {
          throw ArgumentError(ErrorId::argument_invalid, file(), name,
                              join({"expected the local value of the shard (", geometry_text(value.geometry),
                                    ") to hold ", expected, " elements, found ", local.numel()}));
        }
        add(name, value.shape, value.geometry, local);
      } else {
        const TensorView view = saving_view(value, collected_.owned);
        add(name, view.shape(), PieceGeometry::whole(view.shape()), view);
      }
    });
  }
  template <class = void>
  void add(const std::string& name, const Shape& shape, const PieceGeometry& geometry, const TensorView& local) {
    collected_.descriptions.push_back({name, local.dtype(), shape, geometry});
    collected_.views.emplace_back(local.dtype(), geometry.stored_shape(shape), local.data());
  }

  template <class T>
  void metadata(const T& value) {
    collected_.metadata[register_name("metadata")] = to_metadata(value);
  }
  template <class T>
  void prepare_map(T&) {}
  template <class T>
  void prepare_sequence(T&) {}
  template <class T>
  bool prepare_optional(const std::optional<T>& optional) {
    return optional.has_value();
  }

  CollectedPieces collected_;
};

// Checks a state against a checkpoint's index and plans its loads. Like
// LoadingArchive, nothing is loaded before every problem is known: check()
// reports them, and load() runs only once every rank has agreed.
class DistributedLoadingArchive
    : public LoadingArchiveBase<DistributedLoadingArchive, std::function<void(PieceReader<>&)>> {
 public:
  static constexpr bool is_saving = false;
  static constexpr bool is_loading = true;

  template <class = void>
  DistributedLoadingArchive(const CheckpointIndex& index, std::string directory)
      : LoadingArchiveBase(directory, tensor_names(index), index.metadata),
        index_(index),
        directory_(std::move(directory)) {}

  // Strict: throws MismatchError listing every problem. Otherwise returns them.
  template <class = void>
  LoadReport check(bool strict) {
    for (const auto& [name, tensor] : index_.tensors) {
      if (!names().contains(name, "tensor")) {
        report_.unexpected.push_back(join({name, ": tensor ", layout_text(tensor.dtype, tensor.shape)}));
      }
    }
    if (strict && !report_.ok()) throw MismatchError(ErrorId::mismatch_state, directory_, "", report_.to_string());
    return report_;
  }

  // Reads every planned piece and assigns every planned value.
  template <class = void>
  void load(PieceReader<>& reader) {
    for (const std::function<void(PieceReader<>&)>& load : loads_) load(reader);
    loads_.clear();
  }

 private:
  friend class ArchiveBase<DistributedLoadingArchive>;

  template <bool Temporary, class T>
  void tensor(T& value) {
    const std::string name = register_name("tensor");
    const auto found = index_.tensors.find(name);
    const IndexTensor* stored = found == index_.tensors.end() ? nullptr : &found->second;
    const TensorLayout found_layout = stored != nullptr ? TensorLayout{stored->dtype, stored->shape} : TensorLayout{};
    const TensorLayout* found_or_null = stored != nullptr ? &found_layout : nullptr;
    if constexpr (is_shard_v<T>) {
      using Local = std::remove_reference_t<decltype(value.local())>;
      check_shard(file(), name, value);
      const TensorLayout local = with_tensor_name(file(), name, [&] { return expected_layout(value.local()); });
      // The dtype is the local value's, the shape the global tensor's.
      if (!tensor_loadable(report_, name, {local.dtype, value.shape}, found_or_null, takes_any_dtype<Local>::value,
                           false)) {
        return;
      }
      const std::uint64_t count = value.geometry.element_count();
      if (!(is_resizable<Local>::value || element_count(local.shape) == count)) {
        report_.shape_mismatch.push_back(
            join({name, ": expected a local value of ", count, " elements for ", geometry_text(value.geometry),
                  ", found ", shape_to_string(local.shape)}));
        return;
      }
      plan_load(name, *stored, value.geometry, value.local());
    } else {
      const TensorLayout expected = with_tensor_name(file(), name, [&] { return expected_layout(value); });
      const bool takes_file_shape = is_resizable<T>::value && element_count(expected.shape) == 0;
      if (!tensor_loadable(report_, name, expected, found_or_null, takes_any_dtype<T>::value, takes_file_shape)) return;
      if constexpr (Temporary) {
        // A view such as ckpt::shaped() dies with the ar() call; keep a copy of it.
        loads_.push_back([this, name, stored, target = value](PieceReader<>& reader) mutable {
          load_piece(reader, name, *stored, PieceGeometry::whole(stored->shape), target);
        });
      } else {
        plan_load(name, *stored, PieceGeometry::whole(stored->shape), value);
      }
    }
  }

  template <class Target>
  void plan_load(const std::string& name, const IndexTensor& stored, const PieceGeometry& geometry, Target& target) {
    loads_.push_back([this, name, &stored, geometry, &target](PieceReader<>& reader) {
      load_piece(reader, name, stored, geometry, target);
    });
  }

  // Reads one piece into `target`: straight into its memory when its traits
  // offer load_target, else through a Tensor handed to assign().
  template <class Target>
  void load_piece(PieceReader<>& reader, const std::string& name, const IndexTensor& stored,
                  const PieceGeometry& geometry, Target& target) {
    const Shape shape = geometry.stored_shape(stored.shape);
    if constexpr (has_load_target<Target>::value) {
      auto* out = static_cast<std::byte*>(tensor_traits<Target>::load_target(target, shape));
      reader.read(name, stored, geometry, out);
      normalize_bools(stored.dtype, out, geometry.element_count());
    } else {
      Tensor tensor = Tensor::allocate(stored.dtype, shape);
      reader.read(name, stored, geometry, tensor.mutable_data());
      normalize_bools(stored.dtype, tensor.mutable_data(), geometry.element_count());
      tensor_traits<Target>::assign(target, tensor);
    }
  }

  // A file byte other than 0 or 1 must not become an invalid bool.
  template <class = void>
  static void normalize_bools(DType dtype, std::byte* bytes, std::uint64_t count) {
    if (dtype != DType::BOOL) return;
    for (std::uint64_t i = 0; i < count; ++i) bytes[i] = bytes[i] != std::byte{0} ? std::byte{1} : std::byte{0};
  }

  template <class = void>
  static std::set<std::string> tensor_names(const CheckpointIndex& index) {
    std::set<std::string> names;
    for (const auto& entry : index.tensors) names.insert(entry.first);
    return names;
  }

  const CheckpointIndex& index_;
  std::string directory_;
};

}  // namespace ckpt::detail

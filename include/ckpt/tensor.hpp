#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"

namespace ckpt {

using Shape = std::vector<std::uint64_t>;

namespace detail {

// Element count of `shape`, or nullopt when it overflows 64 bits. Checked
// extent by extent from the left, as the reference safetensors reader does,
// so an overflowing prefix fails even when a later extent is 0.
inline std::optional<std::uint64_t> checked_element_count(const Shape& shape) noexcept {
  std::uint64_t count = 1;
  for (std::uint64_t extent : shape) {
    if (extent != 0 && count > UINT64_MAX / extent) return std::nullopt;
    count *= extent;
  }
  return count;
}

// Byte size of `shape` elements of `dtype`, or nullopt on overflow.
inline std::optional<std::uint64_t> checked_byte_size(DType dtype, const Shape& shape) noexcept {
  const std::optional<std::uint64_t> count = checked_element_count(shape);
  if (!count || *count > UINT64_MAX / dtype_size(dtype)) return std::nullopt;
  return *count * dtype_size(dtype);
}

}  // namespace detail

// Number of elements of `shape` (1 for a scalar); throws ArgumentError when the
// product does not fit in 64 bits.
inline std::uint64_t element_count(const Shape& shape) {
  const std::optional<std::uint64_t> count = detail::checked_element_count(shape);
  if (!count) throw ArgumentError(ErrorId::argument_invalid, "", "", "shape overflows 64-bit element count");
  return *count;
}

// Byte size of `shape` elements of `dtype`, with the same overflow check.
inline std::uint64_t byte_size(DType dtype, const Shape& shape) {
  const std::optional<std::uint64_t> size = detail::checked_byte_size(dtype, shape);
  if (!size) throw ArgumentError(ErrorId::argument_invalid, "", "", "shape overflows 64-bit byte size");
  return *size;
}

inline std::string shape_to_string(const Shape& shape) {
  std::string text = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) text += ", ";
    text += std::to_string(shape[i]);
  }
  return detail::join({text, "]"});
}

// A non-owning, read-only view of a tensor in the caller's memory: what a save
// reads from. The synchronous save path never copies the bytes it points to.
class TensorView {
 public:
  TensorView() = default;
  TensorView(DType dtype, Shape shape, const void* data)
      : dtype_(dtype), shape_(std::move(shape)), data_(static_cast<const std::byte*>(data)) {}

  template <class T, class = std::enable_if_t<is_element_type_v<T>>>
  TensorView(const T* data, Shape shape) : TensorView(dtype_of<T>, std::move(shape), data) {}

  DType dtype() const noexcept { return dtype_; }
  const Shape& shape() const noexcept { return shape_; }
  const std::byte* data() const noexcept { return data_; }
  std::uint64_t numel() const { return element_count(shape_); }
  std::uint64_t nbytes() const { return byte_size(dtype_, shape_); }

 private:
  DType dtype_ = DType::U8;
  Shape shape_;
  const std::byte* data_ = nullptr;
};

// A tensor view with the name it is saved under: what a save writes.
struct NamedTensor {
  std::string name;
  TensorView view;
};

// A loaded tensor. It either owns its bytes or points into a read-only memory
// mapping of the checkpoint file; `storage` keeps whichever alive.
class Tensor {
 public:
  Tensor() = default;

  // Zero-initialised tensor owning its bytes.
  template <class = void>
  static Tensor allocate(DType dtype, Shape shape) {
    const std::uint64_t size = byte_size(dtype, shape);
    std::shared_ptr<std::byte[]> bytes(new std::byte[size == 0 ? 1 : size]());
    Tensor tensor;
    tensor.dtype_ = dtype;
    tensor.shape_ = std::move(shape);
    tensor.mutable_data_ = bytes.get();
    tensor.data_ = bytes.get();
    tensor.storage_ = std::move(bytes);
    return tensor;
  }

  // Owning deep copy of a view.
  template <class = void>
  static Tensor copy_of(const TensorView& view) {
    Tensor tensor = allocate(view.dtype(), view.shape());
    if (view.nbytes() != 0) std::memcpy(tensor.mutable_data_, view.data(), view.nbytes());
    return tensor;
  }

  // A tensor borrowing bytes that `keep_alive` owns (e.g. a file mapping).
  template <class = void>
  static Tensor borrowed(DType dtype, Shape shape, const void* data, std::shared_ptr<const void> keep_alive) {
    Tensor tensor;
    tensor.dtype_ = dtype;
    tensor.shape_ = std::move(shape);
    tensor.data_ = static_cast<const std::byte*>(data);
    tensor.storage_ = std::move(keep_alive);
    return tensor;
  }

  DType dtype() const noexcept { return dtype_; }
  const Shape& shape() const noexcept { return shape_; }
  std::uint64_t numel() const { return element_count(shape_); }
  std::uint64_t nbytes() const { return byte_size(dtype_, shape_); }
  const std::byte* data() const noexcept { return data_; }
  // Null when the bytes are borrowed (read-only mapping).
  std::byte* mutable_data() noexcept { return mutable_data_; }
  bool owns_data() const noexcept { return mutable_data_ != nullptr || data_ == nullptr; }
  TensorView view() const { return TensorView(dtype_, shape_, data_); }

  // Typed access; throws MismatchError when T does not match the dtype.
  template <class T>
  const T* data_as() const {
    check_element_type<T>();
    return reinterpret_cast<const T*>(data_);
  }
  template <class T>
  T* mutable_data_as() {
    check_element_type<T>();
    return reinterpret_cast<T*>(mutable_data_);
  }

 private:
  template <class T>
  void check_element_type() const {
    static_assert(is_element_type_v<T>, "ckpt: data_as<T> needs an arithmetic type or ckpt::bfloat16/float16/...");
    if (dtype_of<T> != dtype_) {
      throw MismatchError(
          ErrorId::mismatch_state, "", "",
          detail::join({"expected element type ", dtype_name(dtype_of<T>), ", found ", dtype_name(dtype_)}));
    }
  }

  DType dtype_ = DType::U8;
  Shape shape_;
  const std::byte* data_ = nullptr;
  std::byte* mutable_data_ = nullptr;
  std::shared_ptr<const void> storage_;
};

}  // namespace ckpt

#pragma once

// How ckpt sees a C++ value as a tensor. Built in: std::vector and std::array
// of element types, C arrays (any rank), ckpt::Tensor, and ckpt::shaped() to
// give a vector a multi-dimensional shape. Other types are taught by
// specialising tensor_traits, without editing them.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

// The dtype and shape a tensor value has (or, when loading, expects).
struct TensorLayout {
  DType dtype = DType::U8;
  Shape shape;
};

// Specialise for a tensor type T:
//
//   template <> struct ckpt::tensor_traits<Matrix> {
//     // Saving, one of:
//     static TensorView view(const Matrix& m);        // zero-copy: row-major bytes in m's memory
//     static Tensor to_tensor(const Matrix& m);       // when the bytes must be converted (column-major, ...)
//     // Loading, one of:
//     static void assign(Matrix& target, const Tensor& source);   // copy (or convert) source into target
//     static void* load_target(Matrix& target, const Shape& shape); // memory to read the file's bytes into
//     // Optional:
//     static constexpr bool resizable = true;         // an empty target takes the file's shape
//     static TensorLayout layout(const Matrix& m);    // dtype and shape, so a load need not call to_tensor
//   };
//
// load_target returns row-major memory for a tensor of `shape` (after
// resizing the target when needed); ckpt reads straight into it.
template <class T, class Enable = void>
struct tensor_traits;

namespace detail {

// std::vector<bool> packs bits, so it has its own traits below.
template <class T>
inline constexpr bool is_plain_element_v = is_element_type_v<T> && !std::is_same_v<std::remove_cv_t<T>, bool>;

// What a tensor_traits specialization offers: one detector pair per member.
// clang-format off
template <class T, class = void> struct has_view : std::false_type {};
template <class T>
struct has_view<T, std::void_t<decltype(tensor_traits<T>::view(std::declval<const T&>()))>> : std::true_type {};
template <class T, class = void> struct has_to_tensor : std::false_type {};
template <class T>
struct has_to_tensor<T, std::void_t<decltype(tensor_traits<T>::to_tensor(std::declval<const T&>()))>>
    : std::true_type {};
template <class T, class = void> struct has_assign : std::false_type {};
template <class T>
struct has_assign<T, std::void_t<decltype(tensor_traits<T>::assign(std::declval<T&>(), std::declval<const Tensor&>()))>>
    : std::true_type {};
template <class T, class = void> struct has_load_target : std::false_type {};
template <class T>
struct has_load_target<
    T, std::void_t<decltype(tensor_traits<T>::load_target(std::declval<T&>(), std::declval<const Shape&>()))>>
    : std::true_type {};
template <class T, class = void> struct has_layout : std::false_type {};
template <class T>
struct has_layout<T, std::void_t<decltype(tensor_traits<T>::layout(std::declval<const T&>()))>> : std::true_type {};
template <class T, class = void> struct is_resizable : std::false_type {};
template <class T>
struct is_resizable<T, std::void_t<decltype(tensor_traits<T>::resizable)>>
    : std::bool_constant<tensor_traits<T>::resizable> {};
// Only ckpt::Tensor: it takes the file's dtype as well as its shape.
template <class T, class = void> struct takes_any_dtype : std::false_type {};
template <class T>
struct takes_any_dtype<T, std::void_t<decltype(tensor_traits<T>::any_dtype)>>
    : std::bool_constant<tensor_traits<T>::any_dtype> {};
// clang-format on

template <class T>
inline constexpr bool can_save_tensor_v = has_view<T>::value || has_to_tensor<T>::value;
template <class T>
inline constexpr bool can_load_tensor_v = has_assign<T>::value || has_load_target<T>::value;
// True when tensor_traits<T> is specialised: T is saved as one tensor.
template <class T>
inline constexpr bool is_tensor_like_v = can_save_tensor_v<T> || can_load_tensor_v<T>;

// The view a save writes; converted tensors are kept alive in `owned`.
template <class T>
TensorView saving_view(const T& value, std::vector<Tensor>& owned) {
  static_assert(can_save_tensor_v<T>,
                "ckpt: tensor_traits<T> needs `static TensorView view(const T&)` (zero-copy) or "
                "`static Tensor to_tensor(const T&)` (converting) so that T can be saved");
  if constexpr (has_view<T>::value) {
    return tensor_traits<T>::view(value);
  } else {
    owned.push_back(tensor_traits<T>::to_tensor(value));
    return owned.back().view();
  }
}

// The dtype and shape a load into `value` expects.
template <class T>
TensorLayout expected_layout(const T& value) {
  if constexpr (has_layout<T>::value) {
    return tensor_traits<T>::layout(value);
  } else if constexpr (has_view<T>::value) {
    const TensorView view = tensor_traits<T>::view(value);
    return {view.dtype(), view.shape()};
  } else {
    const Tensor tensor = tensor_traits<T>::to_tensor(value);
    return {tensor.dtype(), tensor.shape()};
  }
}

template <class Array, std::size_t... Dimension>
Shape array_extents(std::index_sequence<Dimension...>) {
  return Shape{std::uint64_t{std::extent_v<Array, Dimension>}...};
}

}  // namespace detail

// std::vector of element types: a 1-D tensor; an empty vector takes the file's size.
template <class T, class Allocator>
struct tensor_traits<std::vector<T, Allocator>, std::enable_if_t<detail::is_plain_element_v<T>>> {
  static constexpr bool resizable = true;
  static TensorView view(const std::vector<T, Allocator>& vector) {
    return TensorView(vector.data(), Shape{std::uint64_t{vector.size()}});
  }
  static void* load_target(std::vector<T, Allocator>& vector, const Shape& shape) {
    vector.resize(static_cast<std::size_t>(element_count(shape)));
    return vector.data();
  }
};

// std::vector<bool> holds bits, not bytes: it is converted to and from BOOL.
template <class Allocator>
struct tensor_traits<std::vector<bool, Allocator>> {
  static constexpr bool resizable = true;
  static TensorLayout layout(const std::vector<bool, Allocator>& vector) {
    return {DType::BOOL, Shape{std::uint64_t{vector.size()}}};
  }
  static Tensor to_tensor(const std::vector<bool, Allocator>& vector) {
    Tensor tensor = Tensor::allocate(DType::BOOL, layout(vector).shape);
    std::byte* bytes = tensor.mutable_data();
    for (std::size_t i = 0; i < vector.size(); ++i) bytes[i] = std::byte{vector[i] ? std::uint8_t{1} : std::uint8_t{0}};
    return tensor;
  }
  static void assign(std::vector<bool, Allocator>& target, const Tensor& source) {
    // Reads bytes, not bools: a file byte other than 0 or 1 must not become an invalid bool.
    target.resize(static_cast<std::size_t>(source.numel()));
    for (std::size_t i = 0; i < target.size(); ++i) target[i] = source.data()[i] != std::byte{0};
  }
};

template <class T, std::size_t N>
struct tensor_traits<std::array<T, N>, std::enable_if_t<is_element_type_v<T>>> {
  static TensorView view(const std::array<T, N>& array) { return TensorView(array.data(), Shape{std::uint64_t{N}}); }
  static void* load_target(std::array<T, N>& array, const Shape&) { return array.data(); }
};

// C arrays of any rank: float[3][4] is a [3, 4] tensor.
template <class T>
struct tensor_traits<T, std::enable_if_t<std::is_array_v<T> && std::extent_v<T> != 0 &&
                                         is_element_type_v<std::remove_all_extents_t<T>>>> {
  static TensorView view(const T& array) {
    return TensorView(dtype_of<std::remove_all_extents_t<T>>,
                      detail::array_extents<T>(std::make_index_sequence<std::rank_v<T>>{}), &array);
  }
  static void* load_target(T& array, const Shape&) { return &array; }
};

template <>
struct tensor_traits<Tensor> {
  static constexpr bool resizable = true;
  static constexpr bool any_dtype = true;
  static TensorView view(const Tensor& tensor) { return tensor.view(); }
  // A Tensor without data is empty: a load gives it the file's dtype and shape.
  static TensorLayout layout(const Tensor& tensor) {
    return {tensor.dtype(), tensor.data() != nullptr ? tensor.shape() : Shape{0}};
  }
  // Shares the loaded bytes: for a raw tensor, the read-only mapping of the file.
  template <class = void>
  static void assign(Tensor& target, const Tensor& source) {
    target = source;
  }
};

// A vector seen as a tensor of `shape` (row-major); see shaped().
template <class Vector>
class Shaped {
 public:
  using element_type = typename std::remove_const_t<Vector>::value_type;
  static_assert(detail::is_plain_element_v<element_type>,
                "ckpt::shaped(vector, shape) needs a vector of arithmetic (or ckpt::bfloat16, ...) elements");

  Shaped(Vector& vector, Shape shape) : vector_(&vector), shape_(std::move(shape)) {}
  Vector& vector() const noexcept { return *vector_; }
  const Shape& shape() const noexcept { return shape_; }

 private:
  Vector* vector_;
  Shape shape_;
};

// ar("weight", ckpt::shaped(weight, {out, in})) saves `weight` as an
// [out, in] tensor; a load checks that shape and resizes `weight` to it.
template <class Vector>
Shaped<Vector> shaped(Vector& vector, Shape shape) {
  return Shaped<Vector>(vector, std::move(shape));
}
template <class Vector, class Extent, class = std::enable_if_t<std::is_integral_v<Extent>>>
Shaped<Vector> shaped(Vector& vector, std::initializer_list<Extent> extents) {
  Shape shape;
  for (Extent extent : extents) {
    if constexpr (std::is_signed_v<Extent>) {
      if (extent < 0) {
        throw ArgumentError(ErrorId::argument_invalid, "", "",
                            detail::join({"ckpt::shaped: negative extent ", extent, " in a shape"}));
      }
    }
    shape.push_back(static_cast<std::uint64_t>(extent));
  }
  return Shaped<Vector>(vector, std::move(shape));
}

template <class Vector>
struct tensor_traits<Shaped<Vector>> {
  static TensorLayout layout(const Shaped<Vector>& shaped) {
    return {dtype_of<typename Shaped<Vector>::element_type>, shaped.shape()};
  }
  static TensorView view(const Shaped<Vector>& shaped) {
    const std::uint64_t count = element_count(shaped.shape());
    if (count != shaped.vector().size()) {
      throw ArgumentError(ErrorId::argument_invalid, "", "",
                          detail::join({"ckpt::shaped: shape ", shape_to_string(shaped.shape()), " holds ", count,
                                        " elements, but the vector has ", shaped.vector().size()}));
    }
    return TensorView(shaped.vector().data(), shaped.shape());
  }
  static void* load_target(Shaped<Vector>& shaped, const Shape& shape) {
    shaped.vector().resize(static_cast<std::size_t>(element_count(shape)));
    return shaped.vector().data();
  }
};

}  // namespace ckpt

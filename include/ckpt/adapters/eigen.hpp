#pragma once

// Optional adapter: Eigen's dense Matrix, Array and Map as checkpoint tensors.
// Include it (and link Eigen) to describe Eigen members directly:
//   ar("weight", weight);   // Eigen::MatrixXf, Eigen::Array33d, Eigen::Map<...>
// Files are row-major, like every safetensors file: row-major and vector
// values are saved without a copy, column-major matrices (Eigen's default) and
// strided maps are transposed into a row-major copy on save and back on load.
// Vectors are 1-D tensors, everything else 2-D. A dynamic-size target that is
// empty adopts the file's shape; any other target must match it.

#include <Eigen/Core>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>

#include "ckpt/detail/text.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt {
namespace detail {

template <class Scalar>
constexpr DType eigen_dtype() {
  if constexpr (std::is_same_v<Scalar, Eigen::half>) {
    return DType::F16;
  } else if constexpr (std::is_same_v<Scalar, Eigen::bfloat16>) {
    return DType::BF16;
  } else {
    static_assert(is_element_type_v<Scalar>,
                  "ckpt/eigen.hpp: this Eigen scalar type has no checkpoint dtype. Use an arithmetic type, "
                  "Eigen::half or Eigen::bfloat16 (complex numbers: save real and imaginary parts separately).");
    return dtype_of<Scalar>;
  }
}

// What every supported Eigen type shares: its dtype, its tensor shape, and a
// row-major Map of the same kind (Matrix or Array) for converting to and from
// the file's layout.
template <class T>
struct EigenLayout {
  using Scalar = typename T::Scalar;
  static constexpr DType dtype = eigen_dtype<Scalar>();
  static constexpr bool is_vector = T::IsVectorAtCompileTime;
  using RowMajorPlain = std::conditional_t<std::is_base_of_v<Eigen::ArrayBase<T>, T>,
                                           Eigen::Array<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                           Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  using RowMajorMap = Eigen::Map<RowMajorPlain>;
  using ConstRowMajorMap = Eigen::Map<const RowMajorPlain>;

  // Lets a load check dtype and shape without converting the value.
  static TensorLayout layout(const T& value) { return {dtype, shape(value)}; }

  static Shape shape(const T& value) {
    if constexpr (is_vector) {
      return {static_cast<std::uint64_t>(value.size())};
    } else {
      return {static_cast<std::uint64_t>(value.rows()), static_cast<std::uint64_t>(value.cols())};
    }
  }
};

// Saving: zero-copy views of bytes that already are row-major and contiguous,
// a row-major copy of anything else.
template <class T, bool zero_copy>
struct EigenSave : EigenLayout<T> {
  static TensorView view(const T& value) {
    return TensorView(EigenLayout<T>::dtype, EigenLayout<T>::shape(value), value.data());
  }
};

template <class T>
struct EigenSave<T, false> : EigenLayout<T> {
  static Tensor to_tensor(const T& value) {
    using Layout = EigenLayout<T>;
    Tensor tensor = Tensor::allocate(Layout::dtype, Layout::shape(value));
    typename Layout::RowMajorMap(reinterpret_cast<typename Layout::Scalar*>(tensor.mutable_data()), value.rows(),
                                 value.cols()) = value;
    return tensor;
  }
};

// Loading, for targets that can be written (not Map<const ...>).
template <class T, bool writable, bool contiguous>
struct EigenTraits : EigenSave<T, contiguous && (T::IsVectorAtCompileTime || T::IsRowMajor)> {};

template <class T, bool contiguous>
struct EigenTraits<T, true, contiguous> : EigenTraits<T, false, contiguous> {
  using Layout = EigenLayout<T>;
  using Scalar = typename Layout::Scalar;
  // Only plain objects own their storage; a Map's size is the caller's.
  static constexpr bool resizable = std::is_base_of_v<Eigen::PlainObjectBase<T>, T> &&
                                    (T::RowsAtCompileTime == Eigen::Dynamic || T::ColsAtCompileTime == Eigen::Dynamic);

  static void assign(T& target, const Tensor& source) {
    if (source.dtype() != Layout::dtype) {
      throw MismatchError(
          ErrorId::mismatch_state, "", "",
          join({"Eigen target holds ", dtype_name(Layout::dtype), ", the file holds ", dtype_name(source.dtype())}));
    }
    const auto [rows, cols] = extent_of(target, source.shape());
    if constexpr (resizable) {
      const bool allowed = (T::RowsAtCompileTime == Eigen::Dynamic || rows == T::RowsAtCompileTime) &&
                           (T::ColsAtCompileTime == Eigen::Dynamic || cols == T::ColsAtCompileTime);
      if (allowed && target.size() == 0) target.resize(rows, cols);
    }
    if (target.rows() != rows || target.cols() != cols) throw shape_mismatch(target, source.shape());
    // Foreign safetensors files need not align tensors: copy those to aligned memory first.
    const bool aligned = reinterpret_cast<std::uintptr_t>(source.data()) % alignof(Scalar) == 0;
    const Tensor aligned_source = aligned ? source : Tensor::copy_of(source.view());
    target = typename Layout::ConstRowMajorMap(reinterpret_cast<const Scalar*>(aligned_source.data()), rows, cols);
  }

 private:
  static MismatchError shape_mismatch(const T& target, const Shape& found) {
    return MismatchError(ErrorId::mismatch_state, "", "",
                         join({"Eigen target has shape ", shape_to_string(Layout::shape(target)), ", the file has ",
                               shape_to_string(found)}));
  }

  // The file's shape as (rows, cols) in the target's orientation; vectors are 1-D.
  static std::pair<Eigen::Index, Eigen::Index> extent_of(const T& target, const Shape& shape) {
    constexpr std::size_t rank = Layout::is_vector ? 1 : 2;
    bool fits = shape.size() == rank;
    for (std::uint64_t extent : shape) {
      fits = fits && extent <= static_cast<std::uint64_t>(std::numeric_limits<Eigen::Index>::max());
    }
    if (!fits) throw shape_mismatch(target, shape);
    const auto first = static_cast<Eigen::Index>(shape[0]);
    if constexpr (!Layout::is_vector) return {first, static_cast<Eigen::Index>(shape[1])};
    if constexpr (T::RowsAtCompileTime == 1) return {1, first};
    return {first, 1};
  }
};

template <class T, bool contiguous>
using EigenTensorTraits = EigenTraits<T, bool(T::Flags& Eigen::LvalueBit), contiguous>;

}  // namespace detail

template <class Scalar, int Rows, int Cols, int Options, int MaxRows, int MaxCols>
struct tensor_traits<Eigen::Matrix<Scalar, Rows, Cols, Options, MaxRows, MaxCols>>
    : detail::EigenTensorTraits<Eigen::Matrix<Scalar, Rows, Cols, Options, MaxRows, MaxCols>, true> {};

template <class Scalar, int Rows, int Cols, int Options, int MaxRows, int MaxCols>
struct tensor_traits<Eigen::Array<Scalar, Rows, Cols, Options, MaxRows, MaxCols>>
    : detail::EigenTensorTraits<Eigen::Array<Scalar, Rows, Cols, Options, MaxRows, MaxCols>, true> {};

// Stride<0, 0> (the default) means the map's elements are contiguous.
template <class Plain, int MapOptions, class Stride>
struct tensor_traits<Eigen::Map<Plain, MapOptions, Stride>>
    : detail::EigenTensorTraits<Eigen::Map<Plain, MapOptions, Stride>,
                                Stride::InnerStrideAtCompileTime == 0 && Stride::OuterStrideAtCompileTime == 0> {};

}  // namespace ckpt

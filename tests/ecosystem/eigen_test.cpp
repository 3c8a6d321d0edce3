// The Eigen adapter: every layout round-trips through a checkpoint, and the
// file always holds row-major bytes whatever Eigen's storage order was.
#include <ckpt/adapters/eigen.hpp>
#include <ckpt/ckpt.hpp>

#include <gtest/gtest.h>

#include "temp_directory_test.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using RowMajorMatrixXd = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

struct EigenState {
  Eigen::MatrixXf column_major;  // Eigen's default layout
  RowMajorMatrixXd row_major;
  Eigen::Matrix3f fixed;
  Eigen::Matrix<std::int32_t, 2, Eigen::Dynamic> half_fixed;
  Eigen::VectorXd vector;
  Eigen::RowVector4i row_vector;
  Eigen::ArrayXXf array;
  Eigen::Array<std::int16_t, 2, 3, Eigen::RowMajor> fixed_array;
  Eigen::Matrix<bool, 2, 2> mask;
  Eigen::Matrix<Eigen::half, 2, 2> half;
  Eigen::Matrix<Eigen::bfloat16, 1, 3> brain;

  template <class Archive>
  void describe(Archive& ar) {
    ar("column_major", column_major);
    ar("row_major", row_major);
    ar("fixed", fixed);
    ar("half_fixed", half_fixed);
    ar("vector", vector);
    ar("row_vector", row_vector);
    ar("array", array);
    ar("fixed_array", fixed_array);
    ar("mask", mask);
    ar("half", half);
    ar("brain", brain);
  }
};

EigenState filled_state() {
  EigenState state;
  state.column_major.resize(2, 3);
  state.column_major << 1, 2, 3, 4, 5, 6;
  state.row_major.resize(3, 2);
  state.row_major << 1.5, -2.5, 3.5, -4.5, 5.5, -6.5;
  state.fixed << 1, 2, 3, 4, 5, 6, 7, 8, 9;
  state.half_fixed.resize(2, 4);
  state.half_fixed << 1, 2, 3, 4, 5, 6, 7, 8;
  state.vector = Eigen::VectorXd::LinSpaced(5, 0.0, 1.0);
  state.row_vector << 7, 8, 9, 10;
  state.array.resize(4, 2);
  state.array << 0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f;
  state.fixed_array << -1, -2, -3, -4, -5, -6;
  state.mask << true, false, false, true;
  state.half << Eigen::half(1.0f), Eigen::half(-2.0f), Eigen::half(0.5f), Eigen::half(3.0f);
  state.brain << Eigen::bfloat16(1.0f), Eigen::bfloat16(2.0f), Eigen::bfloat16(-4.0f);
  return state;
}

// Only the dynamic members start empty: they must adopt the file's shapes.
EigenState fresh_state() {
  EigenState state;
  state.fixed.setZero();
  state.row_vector.setZero();
  state.fixed_array.setZero();
  state.mask.setConstant(false);
  state.half.setConstant(Eigen::half(0.0f));
  state.brain.setConstant(Eigen::bfloat16(0.0f));
  return state;
}

template <class T>
std::vector<T> stored_values(const ckpt::Reader& reader, const std::string& name) {
  const ckpt::TensorInfo* info = reader.find(name);
  EXPECT_NE(info, nullptr) << name;
  std::vector<T> values(ckpt::element_count(info->shape));
  reader.read_into(name, values.data(), values.size() * sizeof(T));
  return values;
}

using EigenAdapterTest = TempDirectoryTest;

TEST_F(EigenAdapterTest, EveryLayoutRoundTrips) {
  const EigenState saved = filled_state();
  const ckpt::Checkpoint<EigenState> checkpoint;
  checkpoint.save(file("eigen.ckpt"), saved);

  EigenState loaded = fresh_state();
  const ckpt::LoadReport report = checkpoint.load(file("eigen.ckpt"), loaded);
  EXPECT_TRUE(report.ok()) << report.to_string();
  EXPECT_EQ(loaded.column_major, saved.column_major);
  EXPECT_EQ(loaded.row_major, saved.row_major);
  EXPECT_EQ(loaded.fixed, saved.fixed);
  EXPECT_EQ(loaded.half_fixed, saved.half_fixed);
  EXPECT_EQ(loaded.vector, saved.vector);
  EXPECT_EQ(loaded.row_vector, saved.row_vector);
  EXPECT_TRUE((loaded.array == saved.array).all());
  EXPECT_TRUE((loaded.fixed_array == saved.fixed_array).all());
  EXPECT_EQ(loaded.mask, saved.mask);
  EXPECT_EQ(loaded.half, saved.half);
  EXPECT_EQ(loaded.brain, saved.brain);
}

TEST_F(EigenAdapterTest, FileHoldsRowMajorBytesWithMatrixShapes) {
  ckpt::Checkpoint<EigenState>().save(file("eigen.ckpt"), filled_state());
  const ckpt::Reader reader(file("eigen.ckpt"));

  EXPECT_EQ(reader.find("column_major")->shape, (ckpt::Shape{2, 3}));
  EXPECT_EQ(stored_values<float>(reader, "column_major"), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(reader.find("row_major")->dtype, ckpt::DType::F64);
  EXPECT_EQ(stored_values<double>(reader, "row_major"), (std::vector<double>{1.5, -2.5, 3.5, -4.5, 5.5, -6.5}));
  EXPECT_EQ(stored_values<std::int32_t>(reader, "half_fixed"), (std::vector<std::int32_t>{1, 2, 3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(reader.find("array")->shape, (ckpt::Shape{4, 2}));
  EXPECT_EQ(stored_values<float>(reader, "array"),
            (std::vector<float>{0.5f, 1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f, 7.5f}));
  EXPECT_EQ(stored_values<std::int16_t>(reader, "fixed_array"), (std::vector<std::int16_t>{-1, -2, -3, -4, -5, -6}));

  // Vectors are 1-D whatever their orientation.
  EXPECT_EQ(reader.find("vector")->shape, (ckpt::Shape{5}));
  EXPECT_EQ(reader.find("row_vector")->shape, (ckpt::Shape{4}));
  EXPECT_EQ(reader.find("row_vector")->dtype, ckpt::DType::I32);
  EXPECT_EQ(stored_values<std::int32_t>(reader, "row_vector"), (std::vector<std::int32_t>{7, 8, 9, 10}));

  EXPECT_EQ(reader.find("mask")->dtype, ckpt::DType::BOOL);
  EXPECT_EQ(reader.find("half")->dtype, ckpt::DType::F16);
  EXPECT_EQ(reader.find("brain")->dtype, ckpt::DType::BF16);
  // 1.0, -2.0, 0.5, 3.0 in IEEE half, row-major.
  EXPECT_EQ(stored_values<std::uint16_t>(reader, "half"), (std::vector<std::uint16_t>{0x3C00, 0xC000, 0x3800, 0x4200}));
}

TEST_F(EigenAdapterTest, RowMajorAndVectorsAreZeroCopyColumnMajorIsConverted) {
  using RowMajorTraits = ckpt::tensor_traits<RowMajorMatrixXd>;
  RowMajorMatrixXd row_major(2, 2);
  row_major << 1, 2, 3, 4;
  EXPECT_EQ(static_cast<const void*>(RowMajorTraits::view(row_major).data()), row_major.data());

  Eigen::VectorXf vector = Eigen::VectorXf::Ones(3);
  EXPECT_EQ(static_cast<const void*>(ckpt::tensor_traits<Eigen::VectorXf>::view(vector).data()), vector.data());

  Eigen::MatrixXf column_major(2, 2);
  column_major << 1, 2, 3, 4;
  const ckpt::Tensor converted = ckpt::tensor_traits<Eigen::MatrixXf>::to_tensor(column_major);
  EXPECT_EQ(std::vector<float>(converted.data_as<float>(), converted.data_as<float>() + 4),
            (std::vector<float>{1, 2, 3, 4}));
}

struct MapState {
  Eigen::Map<Eigen::MatrixXf> weights;
  Eigen::Map<Eigen::Matrix<float, 2, 2, Eigen::RowMajor>> bias;
  template <class Archive>
  void describe(Archive& ar) {
    ar("weights", weights);
    ar("bias", bias);
  }
};

TEST_F(EigenAdapterTest, MapsSaveAndLoadInPlace) {
  std::vector<float> weights = {1, 2, 3, 4, 5, 6};  // column-major 3x2
  std::vector<float> bias = {9, 8, 7, 6};
  const MapState saved{Eigen::Map<Eigen::MatrixXf>(weights.data(), 3, 2),
                       Eigen::Map<Eigen::Matrix<float, 2, 2, Eigen::RowMajor>>(bias.data())};
  ckpt::Checkpoint<MapState>().save(file("maps.ckpt"), saved);
  {
    const ckpt::Reader reader(file("maps.ckpt"));
    EXPECT_EQ(reader.find("weights")->shape, (ckpt::Shape{3, 2}));
    EXPECT_EQ(stored_values<float>(reader, "weights"), (std::vector<float>{1, 4, 2, 5, 3, 6}));
    EXPECT_EQ(stored_values<float>(reader, "bias"), bias);
  }

  // Loading writes into the caller's buffers.
  std::vector<float> loaded_weights(6, 0.0f), loaded_bias(4, 0.0f);
  MapState loaded{Eigen::Map<Eigen::MatrixXf>(loaded_weights.data(), 3, 2),
                  Eigen::Map<Eigen::Matrix<float, 2, 2, Eigen::RowMajor>>(loaded_bias.data())};
  ckpt::Checkpoint<MapState>().load(file("maps.ckpt"), loaded);
  EXPECT_EQ(loaded_weights, weights);
  EXPECT_EQ(loaded_bias, bias);
}

TEST_F(EigenAdapterTest, StridedMapSavesOnlyItsElementsRowMajor) {
  Eigen::Matrix4f whole;
  whole << 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16;
  // The top-left 2x3 block of a column-major 4x4: outer stride 4.
  const Eigen::Map<const Eigen::MatrixXf, 0, Eigen::OuterStride<>> block(whole.data(), 2, 3, Eigen::OuterStride<>(4));
  const ckpt::Tensor tensor = ckpt::tensor_traits<std::remove_const_t<decltype(block)>>::to_tensor(block);
  EXPECT_EQ(tensor.shape(), (ckpt::Shape{2, 3}));
  EXPECT_EQ(std::vector<float>(tensor.data_as<float>(), tensor.data_as<float>() + 6),
            (std::vector<float>{1, 2, 3, 5, 6, 7}));
}

struct FixedState {
  Eigen::Matrix<float, 3, 2> weights;
  template <class Archive>
  void describe(Archive& ar) {
    ar("column_major", weights);
  }
};

struct SizedDynamicState {
  Eigen::MatrixXf weights = Eigen::MatrixXf::Zero(3, 3);
  template <class Archive>
  void describe(Archive& ar) {
    ar("column_major", weights);
  }
};

TEST_F(EigenAdapterTest, ShapeMismatchIsReportedNotResized) {
  ckpt::Checkpoint<EigenState>().save(file("eigen.ckpt"), filled_state());  // column_major is 2x3

  FixedState fixed;
  try {
    ckpt::Checkpoint<FixedState>().load(file("eigen.ckpt"), fixed);
    FAIL() << "a 2x3 tensor loaded into a fixed 3x2 matrix";
  } catch (const ckpt::MismatchError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::mismatch_state);
    EXPECT_NE(std::string(error.what()).find("column_major"), std::string::npos) << error.what();
  }

  // A non-empty dynamic matrix keeps its shape: a mismatch is an error, not a silent resize.
  SizedDynamicState sized;
  const ckpt::LoadReport report =
      ckpt::Checkpoint<SizedDynamicState>(ckpt::SaveOptions{}, ckpt::LoadOptions{false, true})
          .load(file("eigen.ckpt"), sized);
  EXPECT_EQ(report.shape_mismatch.size(), 1u) << report.to_string();
  EXPECT_EQ(sized.weights.rows(), 3);
  EXPECT_EQ(sized.weights.cols(), 3);
}

struct FloatState {
  Eigen::MatrixXf weights;
  template <class Archive>
  void describe(Archive& ar) {
    ar("row_major", weights);
  }
};

TEST_F(EigenAdapterTest, DtypeMismatchIsReported) {
  ckpt::Checkpoint<EigenState>().save(file("eigen.ckpt"), filled_state());  // row_major holds F64
  FloatState state;
  try {
    ckpt::Checkpoint<FloatState>().load(file("eigen.ckpt"), state);
    FAIL() << "an F64 tensor loaded into a float matrix";
  } catch (const ckpt::MismatchError& error) {
    const std::string message = error.what();
    EXPECT_NE(message.find("row_major"), std::string::npos) << message;
    EXPECT_NE(message.find("F64"), std::string::npos) << message;
  }
}

}  // namespace

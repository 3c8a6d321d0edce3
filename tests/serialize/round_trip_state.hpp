#pragma once

// A training state shaped like a real one: a model of layers (member
// describe), a sub-module with a non-member describe, a third-party
// column-major matrix taught through tensor_traits, containers that a fresh
// state leaves empty, an optimizer, an RNG and scalar metadata.

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ckpt/checkpoint.hpp"
#include "ckpt/optim.hpp"

namespace thirdparty {

// A matrix library's type we cannot edit: column-major doubles.
class ColumnMajorMatrix {
 public:
  ColumnMajorMatrix() = default;
  ColumnMajorMatrix(std::size_t rows, std::size_t cols) : rows_(rows), cols_(cols), storage_(rows * cols) {}
  std::size_t rows() const { return rows_; }
  std::size_t cols() const { return cols_; }
  double& at(std::size_t row, std::size_t col) { return storage_[col * rows_ + row]; }
  double at(std::size_t row, std::size_t col) const { return storage_[col * rows_ + row]; }

 private:
  std::size_t rows_ = 0;
  std::size_t cols_ = 0;
  std::vector<double> storage_;
};

}  // namespace thirdparty

namespace ckpt {
// Files are row-major, so the matrix is converted both ways.
template <>
struct tensor_traits<thirdparty::ColumnMajorMatrix> {
  using Matrix = thirdparty::ColumnMajorMatrix;
  static constexpr bool resizable = true;
  static TensorLayout layout(const Matrix& matrix) { return {DType::F64, {matrix.rows(), matrix.cols()}}; }
  static Tensor to_tensor(const Matrix& matrix) {
    Tensor tensor = Tensor::allocate(DType::F64, layout(matrix).shape);
    double* out = tensor.mutable_data_as<double>();
    for (std::size_t row = 0; row < matrix.rows(); ++row) {
      for (std::size_t col = 0; col < matrix.cols(); ++col) *out++ = matrix.at(row, col);
    }
    return tensor;
  }
  static void assign(Matrix& target, const Tensor& source) {
    target = Matrix(source.shape()[0], source.shape()[1]);
    const double* in = source.data_as<double>();
    for (std::size_t row = 0; row < target.rows(); ++row) {
      for (std::size_t col = 0; col < target.cols(); ++col) target.at(row, col) = *in++;
    }
  }
};
}  // namespace ckpt

namespace zoo {

// Described by a non-member function, found through argument-dependent lookup.
struct Embedding {
  std::size_t rows = 5;
  std::size_t cols = 2;
  std::vector<float> table = std::vector<float>(rows * cols);
};
template <class Archive>
void describe(Archive& ar, Embedding& embedding) {
  ar("table", ckpt::shaped(embedding.table, {embedding.rows, embedding.cols}));
}

}  // namespace zoo

namespace serialize_test {

struct Linear {
  int in;
  int out;
  std::vector<float> weight;
  std::vector<float> bias;
  Linear(int in_features, int out_features)
      : in(in_features), out(out_features), weight(std::size_t(in * out)), bias(std::size_t(out)) {}
  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {out, in}))("bias", bias);
  }
};

// A block sizes itself from the file, so a fresh model can have none.
struct Block {
  std::vector<double> gain;
  std::int32_t id = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("gain", gain)("id", id);
  }
};

struct Model {
  Linear fc1{4, 3};
  Linear fc2{3, 2};
  zoo::Embedding embedding;
  thirdparty::ColumnMajorMatrix projection{2, 3};
  float kernel[2][3][2] = {};
  std::array<std::int16_t, 4> counts{};
  // Empty in a fresh model: they take what the file has.
  std::vector<bool> mask;
  std::map<std::string, std::vector<double>> buffers;
  std::optional<std::vector<float>> ema;
  ckpt::Tensor extra;
  std::vector<Block> blocks;

  template <class Archive>
  void describe(Archive& ar) {
    ar("fc1", fc1)("fc2", fc2)("embedding", embedding)("projection", projection)("kernel", kernel);
    ar("counts", counts)("mask", mask)("buffers", buffers)("ema", ema)("extra", extra)("blocks", blocks);
  }
};

struct TrainState {
  Model model;
  ckpt::optim::SGD optimizer;
  std::mt19937_64 rng;
  std::int64_t step = 0;
  std::string run_name;

  template <class Archive>
  void describe(Archive& ar) {
    ar("model", model)("optimizer", optimizer)("rng", rng)("step", step)("run_name", run_name);
  }
};

// Fills every part of `state` from `seed`, including float values whose bits
// a careless copy would change (NaN payload, negative zero, subnormal).
inline void fill(TrainState& state, std::uint32_t seed) {
  std::mt19937 random(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Model& model = state.model;
  for (float& value : model.fc1.weight) value = uniform(random);
  for (float& value : model.fc1.bias) value = uniform(random);
  for (float& value : model.fc2.weight) value = uniform(random);
  for (float& value : model.fc2.bias) value = uniform(random);
  std::uint32_t nan_bits = 0x7fc01234u;
  std::memcpy(&model.fc1.weight[0], &nan_bits, sizeof nan_bits);
  model.fc1.weight[1] = -0.0f;
  model.fc1.weight[2] = std::numeric_limits<float>::denorm_min();
  for (float& value : model.embedding.table) value = uniform(random);
  for (std::size_t row = 0; row < 2; ++row) {
    for (std::size_t col = 0; col < 3; ++col) model.projection.at(row, col) = 10.0 * row + col + seed;
  }
  for (auto& plane : model.kernel) {
    for (auto& line : plane) {
      for (float& value : line) value = uniform(random);
    }
  }
  model.counts = {1, -2, 300, static_cast<std::int16_t>(seed)};
  model.mask = {true, false, true, true, false};
  model.buffers["running/mean"] = {0.5, 0.25};
  model.buffers["var"] = {1.0, 2.0, static_cast<double>(seed)};
  model.ema = std::vector<float>{uniform(random), uniform(random)};
  model.extra = ckpt::Tensor::allocate(ckpt::DType::I32, {2, 2});
  for (int i = 0; i < 4; ++i) model.extra.mutable_data_as<std::int32_t>()[i] = i * static_cast<int>(seed);
  model.blocks = {Block{{1.0, 2.0}, 7}, Block{{3.0}, 8}};

  std::vector<float> gradient(model.fc1.weight.size(), 0.125f);
  std::vector<float> weight(model.fc1.weight.size(), 1.0f);
  state.optimizer.step({ckpt::optim::parameter("fc1.weight", weight, gradient)});
  state.rng.seed(seed);
  state.rng.discard(1000);
  state.step = 1000 + seed;
  state.run_name = "run-" + std::to_string(seed);
}

}  // namespace serialize_test

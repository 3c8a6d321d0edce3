// Adam and SGD with momentum: training interrupted by a checkpoint and
// resumed in fresh objects ends bit-exactly where an uninterrupted run does.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "ckpt/checkpoint.hpp"
#include "ckpt/optim.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/writer.hpp"
#include "serialize_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::TempDir;
using serialize_test::expect_same_saved_state;

constexpr std::size_t inputs = 4;
constexpr std::size_t outputs = 3;
constexpr std::size_t samples = 32;
constexpr std::size_t batch = 8;

// Noisy samples of a fixed linear map: not part of the state.
struct Dataset {
  std::vector<float> x = std::vector<float>(samples * inputs);
  std::vector<float> y = std::vector<float>(samples * outputs);
  Dataset() {
    std::mt19937 random(99);
    std::normal_distribution<float> normal;
    for (float& value : x) value = normal(random);
    for (std::size_t s = 0; s < samples; ++s) {
      for (std::size_t o = 0; o < outputs; ++o) {
        float sum = 0.1f * normal(random);
        for (std::size_t i = 0; i < inputs; ++i) sum += x[s * inputs + i] * float(i + 1) * (o % 2 ? -1.0f : 1.0f);
        y[s * outputs + o] = sum;
      }
    }
  }
};

// A linear model trained on minibatches the state's own RNG draws.
template <class Optimizer>
struct Trainer {
  std::vector<float> weight = std::vector<float>(inputs * outputs, 0.0f);
  std::vector<float> bias = std::vector<float>(outputs, 0.0f);
  Optimizer optimizer;
  std::mt19937 rng{2024};
  std::int64_t step = 0;

  explicit Trainer(const Optimizer& fresh_optimizer) : optimizer(fresh_optimizer) {}

  template <class Archive>
  void describe(Archive& ar) {
    ar("model/weight", ckpt::shaped(weight, {outputs, inputs}))("model/bias", bias);
    ar("optimizer", optimizer)("rng", rng)("step", step);
  }

  void train_step(const Dataset& data) {
    std::vector<float> weight_gradient(weight.size(), 0.0f);
    std::vector<float> bias_gradient(bias.size(), 0.0f);
    std::uniform_int_distribution<std::size_t> pick(0, samples - 1);
    for (std::size_t b = 0; b < batch; ++b) {
      const std::size_t s = pick(rng);
      for (std::size_t o = 0; o < outputs; ++o) {
        float prediction = bias[o];
        for (std::size_t i = 0; i < inputs; ++i) prediction += weight[o * inputs + i] * data.x[s * inputs + i];
        const float error = 2.0f * (prediction - data.y[s * outputs + o]) / float(batch);
        bias_gradient[o] += error;
        for (std::size_t i = 0; i < inputs; ++i) weight_gradient[o * inputs + i] += error * data.x[s * inputs + i];
      }
    }
    optimizer.step({ckpt::optim::parameter("model/weight", weight, weight_gradient, {outputs, inputs}),
                    ckpt::optim::parameter("model/bias", bias, bias_gradient)});
    ++step;
  }
};

constexpr int total_steps = 20;
constexpr int checkpoint_step = 7;

// Trains `total_steps` straight through, and again with a save at
// `checkpoint_step` and a resume into objects built from `fresh_optimizer`;
// the two must agree bit for bit.
template <class Optimizer>
void expect_resume_is_exact(const Optimizer& optimizer, const Optimizer& fresh_optimizer) {
  const Dataset data;
  Trainer<Optimizer> uninterrupted(optimizer);
  for (int i = 0; i < total_steps; ++i) uninterrupted.train_step(data);

  TempDir dir;
  const std::string path = dir.file("resume.safetensors");
  {
    Trainer<Optimizer> first_half(optimizer);
    for (int i = 0; i < checkpoint_step; ++i) first_half.train_step(data);
    ckpt::Checkpoint<Trainer<Optimizer>>().save(path, first_half);
  }
  Trainer<Optimizer> resumed(fresh_optimizer);
  const ckpt::LoadReport report = ckpt::Checkpoint<Trainer<Optimizer>>().load(path, resumed);
  ASSERT_TRUE(report.ok()) << report.to_string();
  EXPECT_EQ(resumed.step, checkpoint_step);
  for (int i = checkpoint_step; i < total_steps; ++i) resumed.train_step(data);

  EXPECT_NE(uninterrupted.weight, std::vector<float>(inputs * outputs, 0.0f)) << "training must move the weights";
  EXPECT_EQ(
      std::memcmp(uninterrupted.weight.data(), resumed.weight.data(), uninterrupted.weight.size() * sizeof(float)), 0);
  expect_same_saved_state(uninterrupted, resumed);

  // Resuming with the weights but a fresh optimizer lands elsewhere: the
  // optimizer state is what makes the resume exact.
  Trainer<Optimizer> weights_only(optimizer);
  ckpt::Checkpoint<Trainer<Optimizer>>().load(path, weights_only);
  weights_only.optimizer = optimizer;
  for (int i = checkpoint_step; i < total_steps; ++i) weights_only.train_step(data);
  EXPECT_NE(weights_only.weight, uninterrupted.weight);
}

TEST(Optimizers, AdamResumesBitExactly) {
  ckpt::optim::AdamOptions options;
  options.learning_rate = 0.05f;
  options.weight_decay = 0.01f;
  // The fresh object is configured differently: the checkpoint's hyperparameters win.
  expect_resume_is_exact(ckpt::optim::Adam(options), ckpt::optim::Adam());
}

ckpt::optim::SGD momentum_sgd(float learning_rate, float dampening, bool nesterov) {
  ckpt::optim::SgdOptions options;
  options.learning_rate = learning_rate;
  options.momentum = 0.9f;
  options.dampening = dampening;
  options.nesterov = nesterov;
  return ckpt::optim::SGD(options);
}

TEST(Optimizers, SgdWithMomentumResumesBitExactly) {
  expect_resume_is_exact(momentum_sgd(0.02f, 0.1f, false), ckpt::optim::SGD());
}

TEST(Optimizers, NesterovSgdResumesBitExactly) {
  expect_resume_is_exact(momentum_sgd(0.01f, 0.0f, true), ckpt::optim::SGD());
}

TEST(Optimizers, StateIsNamedPerParameter) {
  Trainer<ckpt::optim::Adam> trainer{ckpt::optim::Adam()};
  trainer.train_step(Dataset());
  const ckpt::CollectedState collected = ckpt::collect_state(trainer);
  std::vector<std::string> names;
  for (const ckpt::NamedTensor& tensor : collected.tensors) names.push_back(tensor.name);
  EXPECT_EQ(names, (std::vector<std::string>{"model/weight", "model/bias", "optimizer/exp_avg/model/bias",
                                             "optimizer/exp_avg/model/weight", "optimizer/exp_avg_sq/model/bias",
                                             "optimizer/exp_avg_sq/model/weight"}));
  EXPECT_EQ(collected.metadata.at("optimizer/step/model/weight"), 1);
  EXPECT_EQ(trainer.optimizer.steps("model/weight"), 1);
}

// A moment lines up with its weight element by element, so tools can compare
// them (a trajectory of exp_avg beside its weight's).
TEST(Optimizers, StateIsSavedInTheParameterShape) {
  Trainer<ckpt::optim::Adam> adam{ckpt::optim::Adam()};
  Trainer<ckpt::optim::SGD> sgd{momentum_sgd(0.02f, 0.0f, false)};
  adam.train_step(Dataset());
  sgd.train_step(Dataset());
  std::map<std::string, ckpt::Shape> shapes;
  for (const ckpt::NamedTensor& tensor : ckpt::collect_state(adam).tensors) shapes[tensor.name] = tensor.view.shape();
  for (const ckpt::NamedTensor& tensor : ckpt::collect_state(sgd).tensors) shapes[tensor.name] = tensor.view.shape();
  const ckpt::Shape weight_shape{outputs, inputs}, bias_shape{outputs};
  EXPECT_EQ(shapes["optimizer/exp_avg/model/weight"], weight_shape);
  EXPECT_EQ(shapes["optimizer/exp_avg_sq/model/weight"], weight_shape);
  EXPECT_EQ(shapes["optimizer/momentum_buffer/model/weight"], weight_shape);
  EXPECT_EQ(shapes["optimizer/exp_avg/model/bias"], bias_shape);  // given no shape: flat
}

// Files written before optimizer state took its parameter's shape hold it
// flat; they load, training continues bit-exactly, and the next save is shaped.
TEST(Optimizers, FlatStateOfOlderFilesLoadsAndResumesBitExactly) {
  const Dataset data;
  Trainer<ckpt::optim::Adam> uninterrupted{ckpt::optim::Adam()};
  for (int i = 0; i < total_steps; ++i) uninterrupted.train_step(data);

  TempDir dir;
  Trainer<ckpt::optim::Adam> first_half{ckpt::optim::Adam()};
  for (int i = 0; i < checkpoint_step; ++i) first_half.train_step(data);
  ckpt::Checkpoint<Trainer<ckpt::optim::Adam>>().save(dir.file("shaped.ckpt"), first_half);
  // The same file as the flat layout wrote it: every optimizer tensor 1-D.
  {
    const ckpt::Reader shaped(dir.file("shaped.ckpt"));
    std::vector<ckpt::Tensor> kept;
    std::vector<ckpt::NamedTensor> flat;
    for (const ckpt::TensorInfo& info : shaped.tensors()) {
      kept.push_back(shaped.tensor(info.name));
      ckpt::Shape shape = info.shape;
      if (info.name.rfind("optimizer/", 0) == 0) shape = {ckpt::element_count(info.shape)};
      flat.push_back({info.name, ckpt::TensorView(info.dtype, shape, kept.back().data())});
    }
    ckpt::write_checkpoint(dir.file("flat.ckpt"), flat, shaped.metadata());
  }
  ASSERT_EQ(ckpt::Reader(dir.file("flat.ckpt")).find("optimizer/exp_avg/model/weight")->shape,
            ckpt::Shape{outputs * inputs});

  Trainer<ckpt::optim::Adam> resumed{ckpt::optim::Adam()};
  const ckpt::LoadReport report = ckpt::Checkpoint<Trainer<ckpt::optim::Adam>>().load(dir.file("flat.ckpt"), resumed);
  ASSERT_TRUE(report.ok()) << report.to_string();
  for (int i = checkpoint_step; i < total_steps; ++i) resumed.train_step(data);
  EXPECT_EQ(
      std::memcmp(uninterrupted.weight.data(), resumed.weight.data(), uninterrupted.weight.size() * sizeof(float)), 0);
  expect_same_saved_state(uninterrupted, resumed);  // shapes included
}

TEST(Optimizers, ParameterShapeMustHoldItsElements) {
  std::vector<float> value(6, 1.0f), gradient(6, 0.5f);
  const auto error = serialize_test::expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_invalid, [&] {
    ckpt::optim::parameter("w", value, gradient, {4, 2});
  });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->tensor(), "w");
  EXPECT_NE(std::string(error->what()).find("expected a shape of 6 elements, found [4, 2]"), std::string::npos)
      << error->what();
}

TEST(Optimizers, ParameterChangingSizeIsAnError) {
  ckpt::optim::SGD sgd;
  std::vector<float> value(3, 1.0f);
  std::vector<float> gradient(3, 0.5f);
  sgd.step({ckpt::optim::parameter("w", value, gradient)});
  value.resize(4);
  gradient.resize(4);
  const auto error = serialize_test::expect_error<ckpt::ArgumentError>(
      ckpt::ErrorId::argument_invalid, [&] { sgd.step({ckpt::optim::parameter("w", value, gradient)}); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->tensor(), "w");
  EXPECT_NE(std::string(error->what()).find("expected a parameter of 3 elements"), std::string::npos);
}

}  // namespace

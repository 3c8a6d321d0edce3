// The libtorch adapter: tensors, modules and Adam / SGD state survive a
// checkpoint, and training resumed from one continues bit-exactly.
#include <ckpt/adapters/torch.hpp>
#include <ckpt/ckpt.hpp>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "temp_directory_test.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

torch::nn::Sequential make_model(std::uint64_t seed) {
  torch::manual_seed(seed);
  return torch::nn::Sequential(torch::nn::Linear(4, 8), torch::nn::BatchNorm1d(8), torch::nn::ReLU(),
                               torch::nn::Linear(8, 2));
}

// A fixed regression problem, the same in every run.
struct Batch {
  torch::Tensor inputs, targets;
};
Batch training_batch() {
  torch::manual_seed(1234);
  torch::Tensor inputs = torch::randn({16, 4});
  return {inputs, torch::stack({inputs.sum(1), inputs.select(1, 0) * 2}, 1)};
}

template <class Optimizer>
void train(torch::nn::Sequential& model, Optimizer& optimizer, int steps) {
  const Batch batch = training_batch();
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    torch::mse_loss(model->forward(batch.inputs), batch.targets).backward();
    optimizer.step();
  }
}

template <class Optimizer>
struct TrainState {
  torch::nn::Sequential model;
  Optimizer optimizer;
  std::int64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("model", model);
    ar("optimizer", optimizer);
    ar("step", step);
  }
};

void expect_same_parameters(torch::nn::Sequential& actual, torch::nn::Sequential& expected) {
  const auto expected_parameters = expected->named_parameters();
  for (const auto& parameter : actual->named_parameters()) {
    EXPECT_TRUE(torch::equal(parameter.value(), expected_parameters[parameter.key()])) << parameter.key();
  }
  const auto expected_buffers = expected->named_buffers();
  for (const auto& buffer : actual->named_buffers()) {
    EXPECT_TRUE(torch::equal(buffer.value(), expected_buffers[buffer.key()])) << buffer.key();
  }
}

class TorchAdapterTest : public TempDirectoryTest {
 protected:
  void SetUp() override {
    TempDirectoryTest::SetUp();
    torch::set_num_threads(1);  // one reduction order: bit-exact comparisons
  }
};

struct TensorState {
  torch::Tensor floats, doubles, longs, flags, halves, brains, transposed;
  template <class Archive>
  void describe(Archive& ar) {
    ar("floats", floats);
    ar("doubles", doubles);
    ar("longs", longs);
    ar("flags", flags);
    ar("halves", halves);
    ar("brains", brains);
    ar("transposed", transposed);
  }
};

TEST_F(TorchAdapterTest, TensorsOfEveryDtypeRoundTripInPlace) {
  torch::manual_seed(7);
  TensorState saved{torch::randn({3, 4}),
                    torch::randn({5}, torch::kDouble),
                    torch::arange(6, torch::kLong).reshape({2, 3}),
                    torch::tensor({true, false, true}),
                    torch::randn({2, 2}).to(torch::kHalf),
                    torch::randn({4}).to(torch::kBFloat16),
                    torch::arange(6, torch::kFloat).reshape({2, 3}).t()};  // non-contiguous view
  ckpt::Checkpoint<TensorState>().save(file("tensors.ckpt"), saved);

  {
    const ckpt::Reader reader(file("tensors.ckpt"));
    EXPECT_EQ(reader.find("longs")->dtype, ckpt::DType::I64);
    EXPECT_EQ(reader.find("halves")->dtype, ckpt::DType::F16);
    EXPECT_EQ(reader.find("brains")->dtype, ckpt::DType::BF16);
    EXPECT_EQ(reader.find("flags")->dtype, ckpt::DType::BOOL);
    // The transposed view is stored as its logical, row-major values.
    EXPECT_EQ(reader.find("transposed")->shape, (ckpt::Shape{3, 2}));
    std::vector<float> transposed(6);
    reader.read_into("transposed", transposed.data(), transposed.size() * sizeof(float));
    EXPECT_EQ(transposed, (std::vector<float>{0, 3, 1, 4, 2, 5}));
  }

  TensorState loaded{torch::zeros({3, 4}),
                     torch::zeros({5}, torch::kDouble),
                     torch::zeros({2, 3}, torch::kLong),
                     torch::zeros({3}, torch::kBool),
                     torch::zeros({2, 2}, torch::kHalf),
                     torch::zeros({4}, torch::kBFloat16),
                     torch::zeros({2, 3}).t()};
  const void* storage_before = loaded.floats.data_ptr();
  ckpt::Checkpoint<TensorState>().load(file("tensors.ckpt"), loaded);
  EXPECT_EQ(loaded.floats.data_ptr(), storage_before) << "a load must copy into the existing tensor";
  EXPECT_TRUE(torch::equal(loaded.floats, saved.floats));
  EXPECT_TRUE(torch::equal(loaded.doubles, saved.doubles));
  EXPECT_TRUE(torch::equal(loaded.longs, saved.longs));
  EXPECT_TRUE(torch::equal(loaded.flags, saved.flags));
  EXPECT_TRUE(torch::equal(loaded.halves, saved.halves));
  EXPECT_TRUE(torch::equal(loaded.brains, saved.brains));
  EXPECT_TRUE(torch::equal(loaded.transposed, saved.transposed));
}

TEST_F(TorchAdapterTest, ContiguousTensorsAreSavedWithoutCopy) {
  const torch::Tensor tensor = torch::ones({4, 4});
  EXPECT_EQ(static_cast<const void*>(ckpt::tensor_traits<torch::Tensor>::to_tensor(tensor).data()), tensor.data_ptr());
}

TEST_F(TorchAdapterTest, ModuleIsSavedUnderTorchNames) {
  auto model = make_model(1);
  ckpt::Checkpoint<torch::nn::Sequential>().save(file("model.ckpt"), model);
  const ckpt::Reader reader(file("model.ckpt"));
  std::vector<std::string> names;
  for (const ckpt::TensorInfo& info : reader.tensors()) names.push_back(info.name);
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"0.bias", "0.weight", "1.bias", "1.num_batches_tracked", "1.running_mean",
                                             "1.running_var", "1.weight", "3.bias", "3.weight"}));
  EXPECT_EQ(reader.find("1.num_batches_tracked")->dtype, ckpt::DType::I64);
  EXPECT_EQ(reader.find("0.weight")->shape, (ckpt::Shape{8, 4}));
}

template <class Optimizer, class MakeOptimizer>
void expect_bit_exact_resume(const std::string& path, MakeOptimizer make_optimizer) {
  // Uninterrupted: 6 steps.
  auto reference_model = make_model(1);
  Optimizer reference_optimizer = make_optimizer(reference_model);
  train(reference_model, reference_optimizer, 6);

  // Interrupted after 3 steps, with the learning rate changed on the way (as a schedule would).
  auto first_model = make_model(1);
  TrainState<Optimizer> first{first_model, make_optimizer(first_model), 0};
  train(first.model, first.optimizer, 3);
  first.step = 3;
  ckpt::Checkpoint<TrainState<Optimizer>>().save(path, first);

  // A fresh process: other initial weights, a new optimizer with its defaults.
  auto resumed_model = make_model(99);
  TrainState<Optimizer> resumed{resumed_model, make_optimizer(resumed_model), 0};
  ckpt::Checkpoint<TrainState<Optimizer>>().load(path, resumed);
  EXPECT_EQ(resumed.step, 3);
  train(resumed.model, resumed.optimizer, 3);
  expect_same_parameters(resumed.model, reference_model);
}

TEST_F(TorchAdapterTest, AdamResumesBitExactly) {
  expect_bit_exact_resume<torch::optim::Adam>(file("adam.ckpt"), [](torch::nn::Sequential& model) {
    return torch::optim::Adam(model->parameters(), torch::optim::AdamOptions(0.01).weight_decay(0.001));
  });
}

TEST_F(TorchAdapterTest, AmsgradAdamResumesBitExactly) {
  expect_bit_exact_resume<torch::optim::Adam>(file("amsgrad.ckpt"), [](torch::nn::Sequential& model) {
    return torch::optim::Adam(model->parameters(), torch::optim::AdamOptions(0.01).amsgrad(true));
  });
}

TEST_F(TorchAdapterTest, SgdWithMomentumResumesBitExactly) {
  expect_bit_exact_resume<torch::optim::SGD>(file("sgd.ckpt"), [](torch::nn::Sequential& model) {
    return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).dampening(0.1));
  });
}

TEST_F(TorchAdapterTest, HyperparametersAreRestored) {
  auto model = make_model(1);
  TrainState<torch::optim::Adam> saved{model, torch::optim::Adam(model->parameters(), torch::optim::AdamOptions(0.01)),
                                       0};
  static_cast<torch::optim::AdamOptions&>(saved.optimizer.param_groups()[0].options()).lr(0.0025);
  ckpt::Checkpoint<TrainState<torch::optim::Adam>>().save(file("adam.ckpt"), saved);

  auto fresh_model = make_model(2);
  TrainState<torch::optim::Adam> loaded{
      fresh_model, torch::optim::Adam(fresh_model->parameters(), torch::optim::AdamOptions(0.01)), 0};
  ckpt::Checkpoint<TrainState<torch::optim::Adam>>().load(file("adam.ckpt"), loaded);
  EXPECT_EQ(loaded.optimizer.param_groups()[0].options().get_lr(), 0.0025);
}

// Before its first step an SGD parameter has no momentum buffer; restoring such
// a checkpoint into a trained optimizer must make it behave as new again
// (dampening makes a zero buffer differ from none).
TEST_F(TorchAdapterTest, SgdStateAbsentInTheFileIsAbsentAfterLoad) {
  const auto make_sgd = [](torch::nn::Sequential& model) {
    return torch::optim::SGD(model->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9).dampening(0.5));
  };
  auto reference_model = make_model(1);
  auto reference_optimizer = make_sgd(reference_model);
  train(reference_model, reference_optimizer, 2);

  auto model = make_model(1);
  TrainState<torch::optim::SGD> state{model, make_sgd(model), 0};
  ckpt::Checkpoint<TrainState<torch::optim::SGD>>().save(file("untrained.ckpt"), state);
  train(state.model, state.optimizer, 4);
  ASSERT_FALSE(state.optimizer.state().empty());

  ckpt::Checkpoint<TrainState<torch::optim::SGD>>().load(file("untrained.ckpt"), state);
  EXPECT_TRUE(state.optimizer.state().empty());
  train(state.model, state.optimizer, 2);
  expect_same_parameters(state.model, reference_model);
}

TEST_F(TorchAdapterTest, MismatchedModelIsRejectedAndLeftUntouched) {
  auto model = make_model(1);
  TrainState<torch::optim::Adam> saved{model, torch::optim::Adam(model->parameters()), 0};
  train(saved.model, saved.optimizer, 1);
  ckpt::Checkpoint<TrainState<torch::optim::Adam>>().save(file("adam.ckpt"), saved);

  torch::manual_seed(5);
  torch::nn::Sequential wider(torch::nn::Linear(4, 16), torch::nn::BatchNorm1d(16), torch::nn::ReLU(),
                              torch::nn::Linear(16, 2));
  TrainState<torch::optim::Adam> other{wider, torch::optim::Adam(wider->parameters()), 0};
  const torch::Tensor weight_before = wider->named_parameters()["0.weight"].clone();
  try {
    ckpt::Checkpoint<TrainState<torch::optim::Adam>>().load(file("adam.ckpt"), other);
    FAIL() << "a [8, 4] weight loaded into a [16, 4] layer";
  } catch (const ckpt::MismatchError& error) {
    EXPECT_EQ(error.id(), ckpt::ErrorId::mismatch_state);
    const std::string message = error.what();
    EXPECT_NE(message.find("model/0.weight"), std::string::npos) << message;
    EXPECT_NE(message.find("optimizer/state/0/exp_avg"), std::string::npos) << message;
  }
  EXPECT_TRUE(torch::equal(wider->named_parameters()["0.weight"], weight_before));
  EXPECT_TRUE(other.optimizer.state().empty());
}

// Writes a trained model's checkpoint, the values of each of its tensors and
// the model's output on a fixed input, for torch_python_check.py to compare
// with what python3-torch reads. Without CKPT_TORCH_EXPORT_DIR it writes to a
// temporary directory and only checks that the files exist.
TEST_F(TorchAdapterTest, ExportsForPython) {
  const char* export_dir = std::getenv("CKPT_TORCH_EXPORT_DIR");
  const std::filesystem::path directory = export_dir != nullptr ? std::filesystem::path(export_dir) : directory_;

  auto model = make_model(1);
  TrainState<torch::optim::Adam> state{model, torch::optim::Adam(model->parameters(), torch::optim::AdamOptions(0.01)),
                                       0};
  train(state.model, state.optimizer, 3);
  state.step = 3;
  ckpt::Checkpoint<TrainState<torch::optim::Adam>>().save((directory / "model.safetensors").string(), state);

  nlohmann::json expected;
  const auto dump = [&expected](const std::string& name, const torch::Tensor& tensor) {
    const torch::Tensor values = tensor.detach().to(torch::kDouble).flatten();
    expected["tensors"][name] = {
        {"shape", tensor.sizes().vec()},
        {"values", std::vector<double>(values.data_ptr<double>(), values.data_ptr<double>() + values.numel())}};
  };
  for (const auto& parameter : model->named_parameters()) dump("model/" + parameter.key(), parameter.value());
  for (const auto& buffer : model->named_buffers()) dump("model/" + buffer.key(), buffer.value());
  model->eval();
  const torch::Tensor probe = torch::linspace(-1, 1, 12).reshape({3, 4});
  dump("probe_input", probe);
  dump("probe_output", model->forward(probe));
  std::ofstream(directory / "expected.json") << expected.dump();

  EXPECT_TRUE(std::filesystem::exists(directory / "model.safetensors"));
}

}  // namespace

// A model whose parameters are Eigen matrices: include <ckpt/adapters/eigen.hpp> and
// describe them like any other member. Eigen stores matrices column-major by
// default; the checkpoint holds them row-major, as every safetensors reader
// expects, and ckpt converts in both directions.
#include <ckpt/adapters/eigen.hpp>
#include <ckpt/ckpt.hpp>

#include <Eigen/Core>

#include <cstdio>
#include <string>

// A two-layer perceptron, y = W2 tanh(W1 x + b1) + b2.
struct Mlp {
  Eigen::MatrixXf w1, w2;  // dynamic size: an empty model takes the checkpoint's shapes
  Eigen::VectorXf b1, b2;
  std::int64_t step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("fc1.weight", w1);
    ar("fc1.bias", b1);
    ar("fc2.weight", w2);
    ar("fc2.bias", b2);
    ar("step", step);
  }

  Eigen::MatrixXf forward(const Eigen::MatrixXf& x) const {  // one column per sample
    const Eigen::MatrixXf hidden = ((w1 * x).colwise() + b1).array().tanh().matrix();
    return (w2 * hidden).colwise() + b2;
  }
};

// Gradient descent on mean squared error, by hand.
void train(Mlp& model, const Eigen::MatrixXf& x, const Eigen::MatrixXf& y, int steps) {
  const float learning_rate = 0.05f;
  for (int i = 0; i < steps; ++i, ++model.step) {
    const Eigen::MatrixXf hidden = ((model.w1 * x).colwise() + model.b1).array().tanh().matrix();
    const Eigen::MatrixXf error = ((model.w2 * hidden).colwise() + model.b2 - y) / float(x.cols());
    const Eigen::MatrixXf hidden_grad =
        ((model.w2.transpose() * error).array() * (1 - hidden.array().square())).matrix();
    model.w2 -= learning_rate * error * hidden.transpose();
    model.b2 -= learning_rate * error.rowwise().sum();
    model.w1 -= learning_rate * hidden_grad * x.transpose();
    model.b1 -= learning_rate * hidden_grad.rowwise().sum();
  }
}

int main() {
  std::srand(7);  // Eigen's Random() draws from std::rand
  Mlp model{Eigen::MatrixXf::Random(8, 3) * 0.5f, Eigen::MatrixXf::Random(2, 8) * 0.5f, Eigen::VectorXf::Zero(8),
            Eigen::VectorXf::Zero(2)};
  const Eigen::MatrixXf x = Eigen::MatrixXf::Random(3, 64);
  const Eigen::MatrixXf y = (Eigen::MatrixXf(2, 3) << 1, -1, 0.5f, 0, 2, -1).finished() * x;
  train(model, x, y, 200);
  ckpt::Checkpoint<Mlp>().save("eigen_model.safetensors", model);

  // Any safetensors reader sees [out, in] row-major weights, as in PyTorch.
  const ckpt::Reader reader("eigen_model.safetensors");
  for (const ckpt::TensorInfo& tensor : reader.tensors()) {
    std::printf("%-10s %s %s\n", tensor.name.c_str(), std::string(ckpt::dtype_name(tensor.dtype)).c_str(),
                ckpt::shape_to_string(tensor.shape).c_str());
  }

  Mlp restored;  // empty matrices: they adopt the file's shapes
  ckpt::Checkpoint<Mlp>().load(reader, restored);
  const bool same = restored.forward(x) == model.forward(x) && restored.step == model.step;
  std::printf("restored step %lld: predictions %s\n", static_cast<long long>(restored.step),
              same ? "identical" : "DIFFERENT");
  return same ? 0 : 1;
}

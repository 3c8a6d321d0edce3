// Exports a model for Python. A checkpoint written with the "raw" codec (the
// default) is a plain safetensors file: load_in_python.py reads it with json
// and numpy alone, and hands it to PyTorch when installed. Names such as
// "fc1.weight" and row-major [out, in] weights are what torch.nn.Linear expects.
//
//   export_for_python [model.safetensors]
#include <ckpt/ckpt.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

struct Mlp {
  static constexpr int in = 3, hidden = 4, out = 2;
  std::vector<float> fc1_weight, fc1_bias, fc2_weight, fc2_bias;

  // y = fc2(relu(fc1(x))) for one sample.
  std::vector<float> forward(const float* x) const {
    std::vector<float> h(fc1_bias), y(fc2_bias);
    for (int i = 0; i < hidden; ++i) {
      for (int j = 0; j < in; ++j) h[i] += fc1_weight[i * in + j] * x[j];
      h[i] = std::max(h[i], 0.0f);
    }
    for (int i = 0; i < out; ++i) {
      for (int j = 0; j < hidden; ++j) y[i] += fc2_weight[i * hidden + j] * h[j];
    }
    return y;
  }
};

// What Python receives: the weights, plus an input and the output C++
// computed for it, so the Python side can check that it sees the same model.
struct Export {
  Mlp model;
  std::vector<float> probe_input, probe_output;
  template <class Archive>
  void describe(Archive& ar) {
    ar("fc1.weight", ckpt::shaped(model.fc1_weight, {Mlp::hidden, Mlp::in}));
    ar("fc1.bias", model.fc1_bias);
    ar("fc2.weight", ckpt::shaped(model.fc2_weight, {Mlp::out, Mlp::hidden}));
    ar("fc2.bias", model.fc2_bias);
    ar("probe/input", ckpt::shaped(probe_input, {2, Mlp::in}));
    ar("probe/output", ckpt::shaped(probe_output, {2, Mlp::out}));
  }
};

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "model.safetensors";
  Export exported;
  Mlp& model = exported.model;
  model.fc1_weight = {0.5f, -0.25f, 1.0f, 0.75f, 0.125f, -1.0f, -0.5f, 0.25f, 0.5f, 1.5f, -0.75f, 0.0f};
  model.fc1_bias = {0.1f, -0.2f, 0.3f, 0.0f};
  model.fc2_weight = {1.0f, -1.0f, 0.5f, 0.25f, -0.5f, 0.75f, 1.25f, -0.125f};
  model.fc2_bias = {0.05f, -0.05f};
  exported.probe_input = {1.0f, 2.0f, -1.0f, 0.5f, -0.5f, 3.0f};
  for (int sample = 0; sample < 2; ++sample) {
    const std::vector<float> y = model.forward(&exported.probe_input[sample * Mlp::in]);
    exported.probe_output.insert(exported.probe_output.end(), y.begin(), y.end());
  }
  ckpt::Checkpoint<Export>().save(path, exported);
  std::printf("wrote %s; load it with: python3 load_in_python.py %s\n", path.c_str(), path.c_str());
  return 0;
}

// The smallest complete use of ckpt: describe a state once, save it, load it back.
#include <ckpt/ckpt.hpp>
#include <cstdint>
#include <cstdio>
#include <vector>

struct Model {
  std::vector<float> weight, bias;
  std::int64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {2, 3}));  // a [2, 3] tensor
    ar("bias", bias);                            // a 1-D tensor
    ar("step", step);                            // metadata
  }
};

int main() {
  const Model model{{1, 2, 3, 4, 5, 6}, {0.5f, -0.5f}, 42};
  ckpt::Checkpoint<Model>().save("minimal.safetensors", model);
  Model restored;
  ckpt::Checkpoint<Model>().load("minimal.safetensors", restored);
  std::printf("restored step %lld, weight[5] = %g\n", static_cast<long long>(restored.step), restored.weight[5]);
  return restored.weight == model.weight && restored.bias == model.bias && restored.step == 42 ? 0 : 1;
}

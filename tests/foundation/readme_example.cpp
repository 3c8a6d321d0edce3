#include <ckpt/ckpt.hpp>

#include <iostream>
#include <vector>

// Describe your training state once; ckpt saves and restores it by name.
struct Model {
  std::vector<float> weight = std::vector<float>(6, 0.5f);  // a 2x3 matrix
  std::vector<float> bias = std::vector<float>(2, 0.0f);
  int step = 0;

  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", ckpt::shaped(weight, {2, 3}));
    ar("bias", bias);
    ar("step", step);
  }
};

int main() {
  Model model;
  model.step = 42;
  ckpt::Checkpoint<Model> checkpoint;
  checkpoint.save("model.ckpt", model);  // atomic: temp file, fsync, rename

  Model restored;
  checkpoint.load("model.ckpt", restored);  // verifies checksums, shapes and dtypes
  std::cout << "restored step " << restored.step << "\n";
  return restored.step == model.step && restored.weight == model.weight ? 0 : 1;
}

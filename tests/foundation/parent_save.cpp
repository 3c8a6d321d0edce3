// A save against a parent: what a program that saves incrementally
// compiles (foundation.incremental_save_in_parent_save).
#include <ckpt/ckpt.hpp>

#include <vector>

int main() {
  const std::vector<float> weight(1024, 0.5f);
  const std::vector<ckpt::NamedTensor> tensors{{"weight", ckpt::TensorView(weight.data(), {weight.size()})}};
  ckpt::write_checkpoint("parent.ckpt", tensors, nlohmann::json::object());
  ckpt::SaveOptions options;
  options.incremental.parent = "parent.ckpt";
  ckpt::write_checkpoint("child.ckpt", tensors, nlohmann::json::object(), options);
  return 0;
}

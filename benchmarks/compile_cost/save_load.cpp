// The program of issue 11, item 4: save and load a two-vector state.
#include <ckpt/ckpt.hpp>

#include <vector>

struct State {
  std::vector<float> weight = std::vector<float>(1024, 0.5f);
  std::vector<float> moment = std::vector<float>(1024, 0.0f);

  template <class Archive>
  void describe(Archive& ar) {
    ar("weight", weight);
    ar("moment", moment);
  }
};

int main() {
  State state, restored;
  ckpt::Checkpoint<State>().save("state.ckpt", state);
  ckpt::Checkpoint<State>().load("state.ckpt", restored);
  return restored.weight == state.weight ? 0 : 1;
}

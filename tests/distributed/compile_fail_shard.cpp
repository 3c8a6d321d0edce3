// Must not compile: a shard saved by a plain, single-file Checkpoint. The
// test checks that the compiler prints the message naming DistributedCheckpoint.

#include <vector>

#include "ckpt/ckpt.hpp"

struct State {
  std::vector<float> rows = std::vector<float>(4);
  template <class Archive>
  void describe(Archive& ar) {
    ar("w", ckpt::box_shard(rows, {4, 2}, {0, 0}, {2, 2}));
  }
};

int main() { ckpt::Checkpoint<State>().save("state.safetensors", State{}); }

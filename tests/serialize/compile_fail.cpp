// Code that must not compile, one case per CKPT_COMPILE_FAIL_CASE; the test
// checks that the compiler prints ckpt's how-to message for it.

#include <vector>

#include "ckpt/checkpoint.hpp"

namespace {

#if CKPT_COMPILE_FAIL_CASE == 1  // a type with no describe and no traits
struct Opaque {
  int value = 0;
};
struct State {
  Opaque opaque;
  template <class Archive>
  void describe(Archive& ar) {
    ar("opaque", opaque);
  }
};
#elif CKPT_COMPILE_FAIL_CASE == 2  // a temporary that a load could not write back
struct State {
  int step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("step", step + 0);
  }
};
#elif CKPT_COMPILE_FAIL_CASE == 3  // both forms of describe
struct State {
  int step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("step", step);
  }
};
template <class Archive>
void describe(Archive& ar, State& state) {
  ar("step", state.step);
}
#elif CKPT_COMPILE_FAIL_CASE == 4  // tensor traits that can save but not load
struct Buffer {
  std::vector<float> values;
};
}  // namespace
template <>
struct ckpt::tensor_traits<Buffer> {
  static TensorView view(const Buffer& buffer) { return TensorView(buffer.values.data(), {buffer.values.size()}); }
};
namespace {
struct State {
  Buffer buffer;
  template <class Archive>
  void describe(Archive& ar) {
    ar("buffer", buffer);
  }
};
#endif

}  // namespace

int main() {
  State state;
  ckpt::Checkpoint<State>().load("unused.safetensors", state);
}

#pragma once

// What a load found when the checkpoint and the state it was loaded into
// differ (ckpt::Checkpoint, ckpt::CheckpointManager, ckpt::DistributedCheckpoint).

#include <cstddef>
#include <string>
#include <vector>

#include "ckpt/detail/text.hpp"

namespace ckpt {

// How a checkpoint file differs from the state it is loaded into. Each entry
// is one line that starts with the tensor or metadata name.
struct LoadReport {
  std::vector<std::string> missing;         // described by the state, absent from the file
  std::vector<std::string> unexpected;      // tensors in the file that the state does not describe
  std::vector<std::string> dtype_mismatch;  // wrong dtype, or a metadata value of the wrong type
  std::vector<std::string> shape_mismatch;

  std::size_t problem_count() const noexcept {
    return missing.size() + unexpected.size() + dtype_mismatch.size() + shape_mismatch.size();
  }
  bool ok() const noexcept { return problem_count() == 0; }

  std::string to_string() const {
    if (ok()) return "the checkpoint matches the state";
    std::string text = detail::join({"the checkpoint does not match the state (", problem_count(), " problem",
                                     (problem_count() == 1 ? "" : "s"), ")"});
    const auto section = [&text](const char* title, const std::vector<std::string>& lines) {
      if (lines.empty()) return;
      text += detail::join({"\n  ", title, ":"});
      for (const std::string& line : lines) text += detail::join({"\n    ", line});
    };
    section("missing from the file", missing);
    section("in the file but not in the state", unexpected);
    section("wrong dtype", dtype_mismatch);
    section("wrong shape", shape_mismatch);
    return text;
  }
};

}  // namespace ckpt

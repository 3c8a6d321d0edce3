#pragma once

// The names of the files in a distributed checkpoint directory
// (docs/distributed.md): Hugging Face's sharded-safetensors names, so that
// tools which read those find their way.

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

#include "ckpt/detail/os/file_system.hpp"

namespace ckpt::detail {

// The index: Hugging Face's weight map plus ckpt's records. Its appearance
// under this name is the commit of the whole checkpoint.
inline constexpr const char* distributed_index_file = "model.safetensors.index.json";

// "model-00002-of-00004.safetensors": the `number`th (from 1) of `count` files.
inline std::string rank_file_name(std::size_t number, std::size_t count) {
  char text[64];
  std::snprintf(text, sizeof text, "model-%05zu-of-%05zu.safetensors", number, count);
  return text;
}

// "model-" digits "-of-" digits ".safetensors", at least five digits each.
inline bool is_rank_file_name(std::string_view name) {
  constexpr std::string_view prefix = "model-", middle = "-of-", suffix = ".safetensors";
  if (name.size() < prefix.size() + suffix.size() || name.substr(0, prefix.size()) != prefix ||
      name.substr(name.size() - suffix.size()) != suffix) {
    return false;
  }
  const std::string_view numbers = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  const std::size_t split = numbers.find(middle);
  if (split == std::string_view::npos) return false;
  const auto digits = [](std::string_view text) {
    return text.size() >= 5 && text.find_first_not_of("0123456789") == std::string_view::npos;
  };
  return digits(numbers.substr(0, split)) && digits(numbers.substr(split + middle.size()));
}

// A file a distributed save writes into its directory: the index, a rank's
// file, or the temp file of either (see atomic_file.hpp).
inline bool is_checkpoint_file_name(std::string_view name) {
  if (name == distributed_index_file || is_rank_file_name(name)) return true;
  if (!is_temp_file_name(name)) return false;
  const std::string_view final_name = name.substr(1, name.rfind(temp_marker) - 1);
  return final_name == distributed_index_file || is_rank_file_name(final_name);
}

}  // namespace ckpt::detail

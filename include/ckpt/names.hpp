#pragma once

// Hierarchical tensor and metadata names ("model/fc1.weight") and the rules
// every name in a checkpoint follows.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt {

namespace detail {

// What is wrong with a tensor name in any checkpoint, or nullopt.
inline std::optional<std::string> tensor_name_problem(std::string_view name) {
  if (name.empty()) return "expected a non-empty tensor name, found an empty one";
  // One pass finds what most names are: printable ASCII (so without NUL and
  // valid UTF-8), mostly without a '.' (so without a ".." component). A save
  // and an open check every name, 100,000 of them in some files, and the
  // searches this spares cost more than the rest of either check.
  bool printable = true, dots = false;
  for (const char c : name) {
    printable &= static_cast<unsigned char>(c) - 0x20u < 0x5fu;
    dots |= c == '.';
  }
  if (!printable && name.find('\0') != std::string_view::npos) return "expected a tensor name without NUL, found one";
  if (name == "__metadata__") return "the name '__metadata__' is reserved by safetensors";
  if (!printable && !is_valid_utf8(name)) return "expected a UTF-8 tensor name, found invalid UTF-8";
  // Tools export tensors to files named after them: no name may climb out of
  // or escape the directory they export to.
  if (name.front() == '/' || name.back() == '/') return "expected a name without '/' at its ends, found one";
  // A ".." component is the whole name, its first or last component, or one
  // between two slashes; found without a copy of the name.
  const std::size_t size = name.size();
  const bool dot_dot =
      dots && (name == ".." || name.substr(0, 3) == "../" || (size > 3 && name.substr(size - 3) == "/..") ||
               name.find("/../") != std::string_view::npos);
  if (dot_dot) return "expected a name without a '..' component, found one";
  return std::nullopt;
}

}  // namespace detail

// Longest full name, in bytes. Keeps headers small and names readable.
inline constexpr std::size_t max_name_bytes = 1024;

// "model" + "fc1.weight" -> "model/fc1.weight"; an empty prefix is the root.
inline std::string join_name(std::string_view prefix, std::string_view component) {
  std::string name(prefix);
  if (!name.empty()) name += '/';
  name += component;
  return name;
}

// Throws ArgumentError (argument_name) unless `name` is a usable tensor or
// metadata name: at most max_name_bytes, and what every checkpoint reader
// accepts (non-empty, UTF-8, no NUL, no '/' at its ends, no ".." component,
// not safetensors' reserved "__metadata__"). `file` is named in the error.
template <class = void>
void validate_name(std::string_view name, const std::string& file = {}) {
  std::optional<std::string> problem;
  if (name.size() > max_name_bytes) {
    problem = detail::join({"expected a name of at most ", max_name_bytes, " bytes, found ", name.size()});
  } else {
    problem = detail::tensor_name_problem(name);
  }
  // A long name is shown by its start only, to keep the message readable.
  constexpr std::size_t shown_bytes = 64;
  if (problem) {
    throw ArgumentError(ErrorId::argument_name, file, detail::printable_name(detail::excerpt(name, shown_bytes)),
                        *problem);
  }
}

}  // namespace ckpt

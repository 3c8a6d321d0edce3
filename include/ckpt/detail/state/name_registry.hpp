#pragma once

// The names a state's describe() produces: each registered once, with the
// place it was described at, so that a duplicate names both places.

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"

namespace ckpt::detail {

inline std::string join_components(const std::vector<std::string>& components) {
  std::string name;
  for (const std::string& component : components) name = join_name(name, component);
  return name;
}

// The components a name was built from, as the user wrote them in describe():
// "model" > "fc1" > "weight". Shown when two places produce the same name.
inline std::string describe_place(const std::vector<std::string>& components) {
  std::string place;
  for (const std::string& component : components) {
    if (!place.empty()) place += " > ";
    place += '"' + component + '"';
  }
  return place;
}

// Every full name a state produces, with where it came from, so that a
// duplicate is reported with both places. A template only so that programs
// that describe no state do not compile it (see "Compile time" in
// docs/architecture.md).
template <class = void>
class NameRegistry {
 public:
  explicit NameRegistry(std::string file) : file_(std::move(file)) {}

  // Registers `components` joined with '/' as a `kind` ("tensor" or
  // "metadata"); returns the full name. Throws ArgumentError on a bad or
  // duplicate name.
  std::string add(const std::vector<std::string>& components, const char* kind) {
    std::string name = join_components(components);
    validate_name(name, file_);
    const auto [it, inserted] = places_.try_emplace(name, Place{kind, components});
    if (!inserted) {
      throw ArgumentError(ErrorId::argument_duplicate_name, file_, name,
                          join({"the name is used twice: by the ", it->second.kind, " described at ",
                                describe_place(it->second.components), " and by the ", kind, " described at ",
                                describe_place(components)}));
    }
    return name;
  }

  // True when `name` was registered as a `kind`.
  bool contains(const std::string& name, std::string_view kind) const {
    const auto found = places_.find(name);
    return found != places_.end() && found->second.kind == kind;
  }

 private:
  struct Place {
    const char* kind;
    std::vector<std::string> components;
  };
  std::string file_;
  std::map<std::string, Place> places_;
};

// Checks one component as the user passed it to ar(name, value); the full
// name is checked when a value is registered.
inline void validate_component(std::string_view component, const std::vector<std::string>& parents,
                               const std::string& file) {
  const char* problem = component.empty()                                ? "an empty name"
                        : component.find('\0') != std::string_view::npos ? "a name with a NUL byte"
                                                                         : nullptr;
  if (problem == nullptr) return;
  throw ArgumentError(ErrorId::argument_name, file, join_components(parents),
                      join({"ar(name, value) was given ", problem, " inside ",
                            (parents.empty() ? std::string("the root state") : describe_place(parents))}));
}

}  // namespace ckpt::detail

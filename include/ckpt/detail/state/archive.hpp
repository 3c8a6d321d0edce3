#pragma once

// The walk over a state that describe() drives: names and nesting, and the
// dispatch on kinds of values (tensors, metadata, maps, sequences, optionals).
// The saving and the loading archive (describe.hpp) decide what happens to
// each tensor and metadata value.

#include <array>
#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ckpt/detail/state/metadata_value.hpp"
#include "ckpt/detail/state/name_registry.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt::detail {

template <class>
inline constexpr bool dependent_false_v = false;

template <class Archive, class T, class = void>
struct has_member_describe : std::false_type {};
template <class Archive, class T>
struct has_member_describe<Archive, T, std::void_t<decltype(std::declval<T&>().describe(std::declval<Archive&>()))>>
    : std::true_type {};
// No function named `describe` is declared in ckpt, so this finds only the
// user's, through argument-dependent lookup.
template <class Archive, class T, class = void>
struct has_free_describe : std::false_type {};
template <class Archive, class T>
struct has_free_describe<Archive, T, std::void_t<decltype(describe(std::declval<Archive&>(), std::declval<T&>()))>>
    : std::true_type {};
template <class Archive, class T>
void call_free_describe(Archive& archive, T& value) {
  describe(archive, value);
}

template <class T>
struct is_string_map : std::false_type {};
template <class V, class Compare, class Allocator>
struct is_string_map<std::map<std::string, V, Compare, Allocator>> : std::true_type {};
template <class V, class Hash, class Equal, class Allocator>
struct is_string_map<std::unordered_map<std::string, V, Hash, Equal, Allocator>> : std::true_type {};

// Containers of sub-states; containers of element types are tensors instead.
template <class T>
struct is_sequence : std::false_type {};
template <class V, class Allocator>
struct is_sequence<std::vector<V, Allocator>> : std::bool_constant<!is_element_type_v<V>> {};
template <class V, std::size_t N>
struct is_sequence<std::array<V, N>> : std::bool_constant<!is_element_type_v<V>> {};
template <class T>
struct is_vector : std::false_type {};
template <class V, class Allocator>
struct is_vector<std::vector<V, Allocator>> : std::true_type {};

template <class T>
struct is_optional : std::false_type {};
template <class V>
struct is_optional<std::optional<V>> : std::true_type {};

inline std::string layout_text(DType dtype, const Shape& shape) {
  return join({dtype_name(dtype), " ", shape_to_string(shape)});
}

// Runs a tensor_traits hook, whose errors know no file or tensor name, and
// rethrows them naming both.
template <class Function>
auto with_tensor_name(const std::string& file, const std::string& tensor, Function&& function) -> decltype(function()) {
  try {
    return function();
  } catch (const Error& error) {
    error.rethrow_with(file, tensor);
  }
}

// Walks a state through describe(): names, nesting and the dispatch on kinds
// of values. `Derived` (the saving or the loading archive) decides what
// happens to each tensor and metadata value.
template <class Derived>
class ArchiveBase {
 public:
  // Describes `value` under `name`, nested in the name being described.
  template <class T>
  Derived& operator()(std::string_view name, T&& value) {
    using Value = std::remove_cv_t<std::remove_reference_t<T>>;
    constexpr bool temporary = !std::is_lvalue_reference_v<T>;
    static_assert(!temporary || is_tensor_like_v<Value>,
                  "ckpt: ar(name, value) needs the member itself (an lvalue) so that a load can write into it; "
                  "temporaries are accepted only for tensor views such as ckpt::shaped(member, shape)");
    static_assert(Derived::is_saving || !std::is_const_v<std::remove_reference_t<T>>,
                  "ckpt: a load cannot write into a const value; pass non-const members to ar(name, value)");
    validate_component(name, path_, file_);
    path_.emplace_back(name);
    // The saving archive only reads, so a const value is fine there.
    visit<temporary>(const_cast<Value&>(value));
    path_.pop_back();
    return derived();
  }

  // Describes a whole state (the root of the names).
  template <class State>
  void visit_root(State& state) {
    visit<false>(state);
  }

 protected:
  explicit ArchiveBase(std::string file) : file_(file), names_(std::move(file)) {}

  const std::string& file() const noexcept { return file_; }
  std::string current_name() const { return join_components(path_); }
  // Registers the name being described as a `kind` ("tensor" or "metadata").
  std::string register_name(const char* kind) { return names_.add(path_, kind); }
  const NameRegistry<>& names() const noexcept { return names_; }

 private:
  Derived& derived() { return static_cast<Derived&>(*this); }

  template <bool Temporary, class T>
  void visit(T& value) {
    Derived& self = derived();
    if constexpr (is_tensor_like_v<T>) {
      self.template tensor<Temporary>(value);
    } else if constexpr (has_member_describe<Derived, T>::value) {
      static_assert(!has_free_describe<Derived, T>::value,
                    "ckpt: this type has both a member describe() and a non-member describe(); keep one");
      value.describe(self);
    } else if constexpr (has_free_describe<Derived, T>::value) {
      call_free_describe(self, value);
    } else if constexpr (is_metadata_value_v<T>) {
      self.metadata(value);
    } else if constexpr (is_string_map<T>::value) {
      self.prepare_map(value);
      for (auto& [key, entry] : value) (*this)(key, entry);
    } else if constexpr (is_sequence<T>::value) {
      self.prepare_sequence(value);
      for (std::size_t index = 0; index < value.size(); ++index) (*this)(std::to_string(index), value[index]);
    } else if constexpr (is_optional<T>::value) {
      if (self.prepare_optional(value)) visit<false>(*value);
    } else {
      static_assert(
          dependent_false_v<T>,
          "ckpt cannot describe this type. Teach it in one of these ways:\n"
          "  1. a member:      template <class Archive> void describe(Archive& ar) { ar(\"weight\", weight); ... }\n"
          "  2. a non-member in the type's namespace:\n"
          "                    template <class Archive> void describe(Archive& ar, YourType& value) { ... }\n"
          "  3. a tensor type: specialise ckpt::tensor_traits<YourType> (see ckpt/tensor_traits.hpp)\n"
          "Built in: arithmetic and enum scalars, std::string, nlohmann::json, random engines, std::vector / "
          "std::array / C arrays of arithmetic types, ckpt::Tensor, std::map<std::string, V>, std::vector<V>, "
          "std::optional<V>.");
    }
  }

  std::string file_;
  std::vector<std::string> path_;
  NameRegistry<> names_;
};

}  // namespace ckpt::detail

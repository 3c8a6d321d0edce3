#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/text.hpp"
#include "ckpt/tensor.hpp"

// Reading JSON that may be hostile: bounded nesting and array lengths, no
// duplicate keys, and accessors that never assume a member exists.
namespace ckpt::detail {

// An array or object of StrictJsonBuilder's DOM that the parser has not closed.
template <class Json>
struct OpenJsonContainer {
  Json* value;  // stable: a container only grows while none of its children is open
  std::size_t elements;
};

// Builds the DOM of JSON text from nlohmann's SAX events, refusing nesting
// deeper than `max_depth`, arrays longer than `max_elements` (so that no
// single allocation outgrows the file) and duplicate keys (nlohmann would
// silently keep one of them). It builds the DOM itself because nlohmann's
// callback parser rescans the parent object whenever an object closes, which
// makes a header of n tensors cost O(n^2). Like everything here, a template
// on Json (always nlohmann::json) only so that programs that parse no JSON
// do not compile it (see "Compile time" in docs/architecture.md).
template <class Json = nlohmann::json>
class StrictJsonBuilder {
 public:
  using json = Json;

  StrictJsonBuilder(std::size_t max_depth, std::size_t max_elements)
      : max_depth_(max_depth), max_elements_(max_elements) {}

  bool null() { return place(nullptr) != nullptr; }
  bool boolean(bool value) { return place(value) != nullptr; }
  bool number_integer(typename json::number_integer_t value) { return place(value) != nullptr; }
  bool number_unsigned(typename json::number_unsigned_t value) { return place(value) != nullptr; }
  bool number_float(typename json::number_float_t value, const typename json::string_t&) {
    return place(value) != nullptr;
  }
  bool string(typename json::string_t& value) { return place(std::move(value)) != nullptr; }
  bool binary(typename json::binary_t& value) { return place(json::binary(std::move(value))) != nullptr; }
  bool start_object(std::size_t) { return open(json::object()); }
  bool start_array(std::size_t) { return open(json::array()); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  // The object's own map finds duplicates: no second set of keys to keep.
  bool key(typename json::string_t& key) {
    auto [member, inserted] =
        open_.back().value->template get_ref<typename json::object_t&>().emplace(std::move(key), nullptr);
    if (!inserted) return reject(join({"expected unique keys, found '", excerpt(member->first), "' twice"}));
    next_member_ = &member->second;
    return true;
  }

  template <class Exception>
  bool parse_error(std::size_t, const std::string&, const Exception& error) {
    return reject(join({"invalid JSON: ", error.what()}));
  }

  json& result() noexcept { return root_; }
  const std::string& problem() const noexcept { return problem_; }

 private:
  using Open = OpenJsonContainer<Json>;

  // Stores `value` where the parser stands (the root, the next array element
  // or the member whose key came last); nullptr when that array is full.
  json* place(json&& value) {
    if (open_.empty()) {
      root_ = std::move(value);
      return &root_;
    }
    Open& parent = open_.back();
    if (!parent.value->is_array()) {
      *next_member_ = std::move(value);
      return next_member_;
    }
    if (++parent.elements > max_elements_) {
      reject(join({"expected arrays of at most ", max_elements_, " elements, found a longer one"}));
      return nullptr;
    }
    auto& array = parent.value->template get_ref<typename json::array_t&>();
    array.push_back(std::move(value));
    return &array.back();
  }

  bool open(json&& container) {
    json* placed = place(std::move(container));
    if (placed == nullptr) return false;
    if (open_.size() >= max_depth_) {
      return reject(join({"expected JSON nested at most ", max_depth_, " levels deep, found deeper"}));
    }
    open_.push_back(Open{placed, 0});
    return true;
  }

  bool close() {
    open_.pop_back();
    return true;
  }

  bool reject(std::string reason) {
    problem_ = std::move(reason);
    return false;
  }

  std::size_t max_depth_;
  std::size_t max_elements_;
  json root_;
  std::vector<Open> open_;
  json* next_member_ = nullptr;
  std::string problem_;
};

// Parses JSON by the rules of StrictJsonBuilder. On failure returns nullopt
// and says why in `problem`.
template <class Json = nlohmann::json>
std::optional<Json> parse_strict_json(std::string_view text, std::size_t max_depth, std::size_t max_elements,
                                      std::string& problem) {
  // nlohmann takes a NUL byte for the end of the input and would ignore
  // whatever follows it; JSON text never holds one unescaped.
  const std::size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    problem = join({"expected JSON text without NUL bytes, found one at byte ", nul});
    return std::nullopt;
  }
  StrictJsonBuilder<Json> builder(max_depth, max_elements);
  // nlohmann's parser itself rather than json::sax_parse, which takes the
  // input format at run time and so compiles the readers of all five binary
  // formats (CBOR, MessagePack, ...) into every program that reads a header.
  // The parser reads from the same input adapter as nlohmann's own `_json`
  // literal, so a program compiles that lexer once. Its interface has been
  // stable since nlohmann_json 3.9.
  using Adapter = decltype(nlohmann::detail::input_adapter(text.data(), text.data()));
  using Parser = nlohmann::detail::parser<Json, Adapter>;
  if (!Parser(nlohmann::detail::input_adapter(text.data(), text.data() + text.size()), nullptr,
              /*allow_exceptions=*/false, /*skip_comments=*/false)
           .sax_parse(&builder, /*strict=*/true)) {
    problem = builder.problem();
    return std::nullopt;
  }
  return std::move(builder.result());
}

// object[key], or null when absent (nlohmann's const operator[] requires presence).
template <class Json>
const Json& member(const Json& object, const char* key) {
  static const Json missing;
  const auto found = object.find(key);
  return found == object.end() ? missing : *found;
}

template <class Json>
std::optional<std::uint64_t> as_u64(const Json& value) {
  if (!value.is_number_unsigned()) return std::nullopt;
  return value.template get<std::uint64_t>();
}

template <class Json>
std::optional<Shape> as_shape(const Json& value) {
  if (!value.is_array()) return std::nullopt;
  Shape shape;
  for (const Json& extent : value) {
    const auto parsed = as_u64(extent);
    if (!parsed) return std::nullopt;
    shape.push_back(*parsed);
  }
  return shape;
}

}  // namespace ckpt::detail

#pragma once

// The names a checkpoint offers a load: its tensors and its metadata keys.
// Containers in the state take their shape from them: a map gains the keys
// found under its name, an empty vector of sub-states as many elements as
// there are indices, an optional holds a value when anything is under its
// name. Shared by the loading archives of one file and of a distributed
// checkpoint.

#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <utility>

#include "ckpt/detail/state/archive.hpp"
#include "ckpt/detail/state/metadata_value.hpp"
#include "ckpt/tensor_traits.hpp"

namespace ckpt::detail {

class FileNames {
 public:
  FileNames(std::set<std::string> tensors, std::set<std::string> metadata)
      : tensors_(std::move(tensors)), metadata_(std::move(metadata)) {}

  bool has_metadata(const std::string& name) const { return metadata_.count(name) != 0; }

  // A map takes the keys the file has under `name` (new entries start
  // default-constructed).
  template <class Map>
  void adopt_map_keys(Map& map, const std::string& name) const {
    using Entry = typename Map::mapped_type;
    if constexpr (std::is_default_constructible_v<Entry>) {
      // An entry that is itself one tensor or value may have '/' in its key.
      constexpr bool leaf = is_tensor_like_v<Entry> || is_metadata_value_v<Entry>;
      if constexpr (!is_metadata_value_v<Entry>) adopt_keys(map, tensors_, name, leaf);
      if constexpr (!is_tensor_like_v<Entry>) adopt_keys(map, metadata_, name, leaf);
    }
  }

  // An empty std::vector of sub-states takes as many elements as the file
  // has indices under `name`.
  template <class Sequence>
  void size_sequence(Sequence& sequence, const std::string& name) const {
    if constexpr (is_vector<Sequence>::value && std::is_default_constructible_v<typename Sequence::value_type>) {
      if (!sequence.empty()) return;
      std::set<std::string> indices;
      const auto collect = [&indices](const std::string& rest) {
        const std::string index = rest.substr(0, rest.find('/'));
        const bool canonical = !index.empty() && index.find_first_not_of("0123456789") == std::string::npos &&
                               (index == "0" || index[0] != '0');
        if (canonical) indices.insert(index);
      };
      for_names_under(tensors_, name, collect);
      for_names_under(metadata_, name, collect);
      sequence.resize(indices.size());
    }
  }

  // An optional holds a value exactly when the file has something under
  // `name`: returns whether to describe its value; when the file has
  // nothing, calls `reset_on_load` so the archive empties it at load time.
  template <class T, class Reset>
  bool prepare_optional(std::optional<T>& optional, const std::string& name, Reset&& reset_on_load) const {
    if (!has_any_under(name)) {
      reset_on_load();
      return false;
    }
    if constexpr (std::is_default_constructible_v<T>) {
      if (!optional) optional.emplace();
    }
    return optional.has_value();
  }

  // True when the file has `name` itself or anything under it.
  bool has_any_under(const std::string& name) const {
    bool present = tensors_.count(name) != 0 || metadata_.count(name) != 0;
    const auto mark_present = [&present](const std::string&) { present = true; };
    for_names_under(tensors_, name, mark_present);
    for_names_under(metadata_, name, mark_present);
    return present;
  }

 private:
  template <class Map>
  void adopt_keys(Map& map, const std::set<std::string>& file_names, const std::string& name, bool whole_rest) const {
    for_names_under(file_names, name, [&](const std::string& rest) {
      std::string key = whole_rest ? rest : rest.substr(0, rest.find('/'));
      // A name no describe() could have written ("buffers/", a NUL byte) is
      // left to be reported as unexpected.
      if (!key.empty() && key.find('\0') == std::string::npos) map.try_emplace(std::move(key));
    });
  }

  // Calls `function` with the rest of every name under `name`.
  template <class Function>
  static void for_names_under(const std::set<std::string>& file_names, const std::string& name, Function&& function) {
    const std::string prefix = name.empty() ? name : name + '/';
    for (auto it = file_names.lower_bound(prefix); it != file_names.end() && it->compare(0, prefix.size(), prefix) == 0;
         ++it) {
      function(it->substr(prefix.size()));
    }
  }

  std::set<std::string> tensors_;
  std::set<std::string> metadata_;
};

}  // namespace ckpt::detail

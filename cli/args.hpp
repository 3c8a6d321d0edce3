#pragma once

// A small command-line parser: positionals, boolean flags and options with a
// value ("--codec zstd" or "--codec=zstd"; an option given twice keeps both
// values), "--" ending the options.

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ckpt::cli {

// A mistake in the command line: reported with the usage, exit code 2.
class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct CommandSpec {
  std::set<std::string, std::less<>> flags;           // e.g. "--json"
  std::set<std::string, std::less<>> valued_options;  // e.g. "--codec"
  std::size_t min_positionals = 0;
  std::size_t max_positionals = 0;
};

class Arguments {
 public:
  Arguments(const std::vector<std::string>& words, const CommandSpec& spec) {
    // --help wins over any mistake elsewhere on the line.
    for (const std::string& word : words) {
      if (word == "--") break;
      if (word == "--help" || word == "-h") {
        help_ = true;
        return;
      }
    }
    bool options_ended = false;
    for (std::size_t i = 0; i < words.size(); ++i) {
      const std::string& word = words[i];
      if (options_ended || word.size() < 2 || word[0] != '-') {
        positionals_.push_back(word);
      } else if (word == "--") {
        options_ended = true;
      } else if (spec.flags.count(word)) {
        flags_.insert(word);
      } else {
        const std::size_t equals = word.find('=');
        const std::string name = word.substr(0, equals);
        if (!spec.valued_options.count(name)) throw UsageError("unknown option '" + name + "'");
        if (equals != std::string::npos) {
          values_[name].push_back(word.substr(equals + 1));
        } else if (i + 1 < words.size()) {
          values_[name].push_back(words[++i]);
        } else {
          throw UsageError("option '" + name + "' needs a value");
        }
      }
    }
    if (positionals_.size() < spec.min_positionals) throw UsageError("missing arguments");
    if (positionals_.size() > spec.max_positionals) {
      throw UsageError("unexpected argument '" + positionals_[spec.max_positionals] + "'");
    }
  }

  bool help() const noexcept { return help_; }
  bool flag(std::string_view name) const { return flags_.count(std::string(name)) != 0; }
  // The option's last value, for options given once.
  std::optional<std::string> value(std::string_view name) const {
    const auto found = values_.find(std::string(name));
    return found == values_.end() ? std::nullopt : std::optional(found->second.back());
  }
  // Every value of a repeatable option, in command-line order.
  std::vector<std::string> values(std::string_view name) const {
    const auto found = values_.find(std::string(name));
    return found == values_.end() ? std::vector<std::string>{} : found->second;
  }
  const std::vector<std::string>& positionals() const noexcept { return positionals_; }

 private:
  bool help_ = false;
  std::vector<std::string> positionals_;
  std::set<std::string> flags_;
  std::map<std::string, std::vector<std::string>> values_;
};

}  // namespace ckpt::cli

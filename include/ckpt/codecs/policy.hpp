#pragma once

#include <string>
#include <utility>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"

namespace ckpt {

// Which codec encodes which tensor: a default spec, overridden per dtype and
// per tensor name. Name rules are glob patterns ('*' matches any run of
// characters, including '/'; '?' one character); the first matching name rule
// wins, then the dtype rule, then the default. (Members of more than a line
// are templates only so that programs that never save do not compile them;
// see "Compile time" in docs/architecture.md.)
class CodecPolicy {
 public:
  // Implicit, so `options.codecs = "zstd";` reads naturally.
  CodecPolicy(std::string default_spec = "raw") : default_spec_(std::move(default_spec)) {}  // NOLINT
  CodecPolicy(const char* default_spec) : default_spec_(default_spec) {}                     // NOLINT

  // A later rule for the same dtype replaces the earlier one.
  template <class = void>
  CodecPolicy& for_dtype(DType dtype, std::string spec) {
    for (auto& rule : by_dtype_) {
      if (rule.first == dtype) {
        rule.second = std::move(spec);
        return *this;
      }
    }
    by_dtype_.emplace_back(dtype, std::move(spec));
    return *this;
  }

  // Name rules are tried in the order they were added.
  template <class = void>
  CodecPolicy& for_names(std::string glob, std::string spec) {
    by_name_.emplace_back(std::move(glob), std::move(spec));
    return *this;
  }

  const std::string& default_spec() const noexcept { return default_spec_; }

  template <class = void>
  const std::string& spec_for(const std::string& name, DType dtype) const {
    for (const auto& rule : by_name_) {
      if (detail::glob_match(rule.first, name)) return rule.second;
    }
    for (const auto& rule : by_dtype_) {
      if (rule.first == dtype) return rule.second;
    }
    return default_spec_;
  }

 private:
  std::string default_spec_;
  // A few rules at most: a vector, which costs programs less to compile than a std::map.
  std::vector<std::pair<DType, std::string>> by_dtype_;
  std::vector<std::pair<std::string, std::string>> by_name_;
};

}  // namespace ckpt

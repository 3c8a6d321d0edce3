#pragma once

// A fresh directory for one test, removed with everything in it when the
// test ends, so that tests never see each other's files.

#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

namespace ckpt::test {

class TempDir {
 public:
  // Under ::testing::TempDir(), which follows $TEST_TMPDIR and $TMPDIR.
  TempDir() {
    std::string pattern = ::testing::TempDir() + "ckpt-test-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  ~TempDir() {
    // A destructor must not throw; a directory left behind is only clutter.
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

  // The names in the directory (dotfiles included), sorted, so a test can say
  // exactly what it expects to find.
  std::vector<std::string> names() const { return names_in(path_); }
  static std::vector<std::string> names_in(const std::string& directory) {
    std::vector<std::string> names;
    for (const auto& entry : std::filesystem::directory_iterator(directory)) names.push_back(entry.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  std::string path_;
};

}  // namespace ckpt::test

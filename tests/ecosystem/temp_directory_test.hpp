#pragma once

// A fixture giving each test its own empty directory, removed afterwards.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

class TempDirectoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    directory_ = std::filesystem::path(::testing::TempDir()) /
                 ("ckpt_ecosystem_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(directory_);
    std::filesystem::create_directories(directory_);
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }
  std::string file(const std::string& name) const { return (directory_ / name).string(); }

  std::filesystem::path directory_;
};

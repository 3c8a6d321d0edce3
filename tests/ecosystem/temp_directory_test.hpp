#pragma once

// A fixture giving each test its own empty directory, removed afterwards.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "support/temp_dir.hpp"

class TempDirectoryTest : public ::testing::Test {
 protected:
  std::string file(const std::string& name) const { return temp_dir_.file(name); }

  ckpt::test::TempDir temp_dir_;
  std::filesystem::path directory_{temp_dir_.path()};
};

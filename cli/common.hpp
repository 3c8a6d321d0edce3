#pragma once

// What every command shares: exit codes and checks on the paths it is given.

#include <sys/stat.h>

#include <string>

#include "args.hpp"

namespace ckpt::cli {

enum ExitCode : int {
  exit_ok = 0,
  exit_problem = 1,  // corruption found, files differ, or the operation failed
  exit_usage = 2,    // bad command line, or an input that does not exist
};

inline bool path_exists(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0;
}

inline bool is_directory(const std::string& path) {
  struct stat status {};
  return ::stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode);
}

inline void require_existing(const std::string& path) {
  if (!path_exists(path)) throw UsageError("'" + path + "' does not exist");
}

}  // namespace ckpt::cli

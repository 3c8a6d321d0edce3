#pragma once

// One writer per directory: an exclusive flock on a dotfile. The kernel drops
// the lock when its holder exits, even by SIGKILL, so a crash never leaves a
// stale lock behind. The holder's pid is written into the file so the error a
// second writer gets can name it.

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

inline constexpr const char* lock_file_name = ".ckpt.lock";

class DirectoryLock {
 public:
  explicit DirectoryLock(const std::string& directory) : path_(join({directory, "/", lock_file_name})) {
    FileSystem& fs = file_system();
    fd_ = fs.open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw_system_error(ErrorId::io_open, path_, "creating the lock file", errno);
    if (fs.flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      const int error = errno;
      // Another writer holds it (EWOULDBLOCK): a state to report with its pid.
      // Anything else (ENOLCK on a file system without locks, EINTR) is an I/O failure.
      const std::string holder = error == EWOULDBLOCK ? read_holder() : "";
      fs.close(fd_);
      if (error != EWOULDBLOCK) throw_system_error(ErrorId::io_open, path_, "flock", error);
      throw StateError(ErrorId::state_locked, path_, "",
                       join({"directory '", directory, "' is already used by another checkpoint manager", holder,
                             "; expected one writer per directory (open it read-only to list or restore)"}));
    }
    const std::string pid = join({::getpid(), "\n"});
    // The pid is only a hint for the error message above: failing to record it is harmless.
    if (fs.ftruncate(fd_, 0) == 0) fs.pwrite(fd_, pid.data(), pid.size(), 0);
  }

  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  ~DirectoryLock() { file_system().close(fd_); }  // closing releases the flock

 private:
  std::string read_holder() const {
    char text[32] = {};
    const long size = file_system().pread(fd_, text, sizeof text - 1, 0);
    std::string pid(text, size > 0 ? static_cast<std::size_t>(size) : 0);
    while (!pid.empty() && (pid.back() == '\n' || pid.back() == ' ')) pid.pop_back();
    if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) return "";
    return join({" (pid ", pid, ")"});
  }

  std::string path_;
  int fd_ = -1;
};

}  // namespace ckpt::detail

#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>

#include "ckpt/error.hpp"

namespace ckpt::detail {

// Every mutating file-system call ckpt makes goes through this class, so that
// tests can inject faults (the k-th write fails, ENOSPC, a simulated crash).
// The default implementation forwards to POSIX. Calls report failure like
// POSIX does: a negative result and errno set.
class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual int open(const char* path, int flags, unsigned mode) { return ::open(path, flags, static_cast<mode_t>(mode)); }
  virtual long write(int fd, const void* data, std::size_t size) { return static_cast<long>(::write(fd, data, size)); }
  virtual int fsync(int fd) { return ::fsync(fd); }
  virtual int close(int fd) { return ::close(fd); }
  virtual int rename(const char* from, const char* to) { return ::rename(from, to); }
  virtual int unlink(const char* path) { return ::unlink(path); }
};

inline std::atomic<FileSystem*>& installed_file_system() {
  static std::atomic<FileSystem*> installed{nullptr};
  return installed;
}

inline FileSystem& file_system() {
  static FileSystem posix;
  FileSystem* installed = installed_file_system().load();
  return installed != nullptr ? *installed : posix;
}

// Installs `fs` for every following call (tests only); nullptr restores POSIX.
inline void set_file_system(FileSystem* fs) { installed_file_system().store(fs); }

// Throws the IoError for a failed system call. A full disk gets its own id and
// a message that says so, because it is the one failure users can fix at once.
[[noreturn]] inline void throw_system_error(ErrorId id, const std::string& path, const std::string& action,
                                            int error) {
  if (error == ENOSPC || error == EDQUOT) {
    throw IoError(ErrorId::io_no_space, path, "",
                  "the disk is full: " + action + " failed with 'no space left on device'; free space and retry");
  }
  throw IoError(id, path, "", action + " failed: " + std::generic_category().message(error));
}

inline std::string directory_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

inline std::string file_name_of(const std::string& path) {
  const std::size_t slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

inline constexpr std::string_view temp_marker = ".tmp-";

// Temp files are named "." + final file name + ".tmp-" + unique suffix.
inline bool is_temp_file_name(std::string_view file_name) {
  const std::size_t marker = file_name.rfind(temp_marker);
  return file_name.size() > 1 && file_name[0] == '.' && marker != std::string_view::npos && marker > 1 &&
         marker + temp_marker.size() < file_name.size();
}

inline void fsync_directory(const std::string& directory) {
  FileSystem& fs = file_system();
  const int fd = fs.open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  if (fd < 0) throw_system_error(ErrorId::io_sync, directory, "opening the directory to fsync it", errno);
  if (fs.fsync(fd) != 0) {
    const int error = errno;
    fs.close(fd);
    throw_system_error(ErrorId::io_sync, directory, "fsync of the directory", error);
  }
  fs.close(fd);
}

// Removes `path` through file_system(); a missing file is an error too.
inline void remove_file(const std::string& path) {
  if (file_system().unlink(path.c_str()) != 0) throw_system_error(ErrorId::io_remove, path, "unlink", errno);
}

}  // namespace ckpt::detail

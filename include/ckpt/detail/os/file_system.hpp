#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// Every file-system call ckpt makes goes through this class, so that tests
// can inject faults (the k-th write fails, ENOSPC, a simulated crash) and
// record what a save does. The default implementation forwards to POSIX and
// is the only code in include/ckpt that calls the kernel's file operations.
// Two libraries do their own I/O and are the documented exceptions: HDF5
// reads and writes its files itself (ckpt's create, fsync, rename and unlink
// around an export still pass here), and madvise is advice about memory, not
// a file operation.
//
// Calls report failure like POSIX does: a negative result (MAP_FAILED for
// map_read_only) and errno set. Each call is self-contained, so that a layer
// recording the calls of a save can replay them: writes carry their offset,
// calls on a descriptor act on what open() returned for a path (mapping
// descriptors to paths is the recorder's job), and no helper below reaches
// the kernel except through these virtual functions.
class FileSystem {
 public:
  virtual ~FileSystem() = default;

  // Descriptors: open, inspect, close.
  virtual int open(const char* path, int flags, unsigned mode) {
    return ::open(path, flags, static_cast<mode_t>(mode));
  }
  virtual int close(int fd) { return ::close(fd); }
  virtual int fstat(int fd, struct stat* status) { return ::fstat(fd, status); }
  virtual int stat(const char* path, struct stat* status) { return ::stat(path, status); }

  // Reading.
  virtual long pread(int fd, void* data, std::size_t size, std::uint64_t offset) {
    return static_cast<long>(::pread(fd, data, size, static_cast<off_t>(offset)));
  }
  // A read-only shared mapping of the first `size` bytes of `fd`'s file.
  virtual void* map_read_only(int fd, std::size_t size) { return ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0); }
  virtual int unmap(void* address, std::size_t size) { return ::munmap(address, size); }
  // Replaces `names` with the names in directory `path`, without "." and "..".
  virtual int list_directory(const char* path, std::vector<std::string>& names) {
    names.clear();
    DIR* directory = ::opendir(path);
    if (directory == nullptr) return -1;
    for (;;) {
      errno = 0;  // readdir reports the end and an error alike, by NULL; only errno tells them apart
      const dirent* entry = ::readdir(directory);
      if (entry == nullptr) break;
      if (std::strcmp(entry->d_name, ".") != 0 && std::strcmp(entry->d_name, "..") != 0) {
        names.emplace_back(entry->d_name);
      }
    }
    const int error = errno;
    ::closedir(directory);
    errno = error;
    return error == 0 ? 0 : -1;
  }

  // Changing files and directories.
  virtual long pwrite(int fd, const void* data, std::size_t size, std::uint64_t offset) {
    return static_cast<long>(::pwrite(fd, data, size, static_cast<off_t>(offset)));
  }
  virtual int ftruncate(int fd, std::uint64_t size) { return ::ftruncate(fd, static_cast<off_t>(size)); }
  virtual int fsync(int fd) { return ::fsync(fd); }
  // Starts writing `size` bytes from `offset` of `fd`'s file to disk and
  // returns without waiting (Linux's sync_file_range; elsewhere nothing). A
  // hint about when dirty pages leave memory, not a promise that they did:
  // a write-back error is reported by the fsync that follows, so callers
  // ignore its result.
  virtual int start_writeback(int fd, std::uint64_t offset, std::uint64_t size) {
#ifdef __linux__
    return ::sync_file_range(fd, static_cast<off_t>(offset), static_cast<off_t>(size), SYNC_FILE_RANGE_WRITE);
#else
    (void)fd, (void)offset, (void)size;
    return 0;
#endif
  }
  virtual int rename(const char* from, const char* to) { return ::rename(from, to); }
  virtual int unlink(const char* path) { return ::unlink(path); }
  virtual int mkdir(const char* path, unsigned mode) { return ::mkdir(path, static_cast<mode_t>(mode)); }
  virtual int rmdir(const char* path) { return ::rmdir(path); }
  // Advisory lock on the whole file (LOCK_EX, LOCK_NB, LOCK_UN).
  virtual int flock(int fd, int operation) { return ::flock(fd, operation); }
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
[[noreturn]] inline void throw_system_error(ErrorId id, const std::string& path, const std::string& action, int error) {
  if (error == ENOSPC || error == EDQUOT) {
    throw IoError(ErrorId::io_no_space, path, "",
                  join({"the disk is full: ", action, " failed with 'no space left on device'; free space and retry"}));
  }
  throw IoError(id, path, "", join({action, " failed: ", std::generic_category().message(error)}));
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

// Closes a descriptor when its scope ends, for code that only reads through it
// (a close failing after reads loses nothing, so its result is not checked).
class ReadDescriptor {
 public:
  explicit ReadDescriptor(int fd) noexcept : fd_(fd) {}
  ReadDescriptor(const ReadDescriptor&) = delete;
  ReadDescriptor& operator=(const ReadDescriptor&) = delete;
  ~ReadDescriptor() {
    if (fd_ >= 0) file_system().close(fd_);
  }
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

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

// The names in `directory`, unsorted. A directory that does not exist holds
// nothing (a reader may look before the first writer created it); any other
// failure is an IoError naming the directory.
inline std::vector<std::string> directory_names(const std::string& directory) {
  std::vector<std::string> names;
  if (file_system().list_directory(directory.c_str(), names) != 0) {
    if (errno == ENOENT) return {};
    throw_system_error(ErrorId::io_read, directory, "listing the directory", errno);
  }
  return names;
}

// True when `path` names something (stat succeeds); false when not or when
// it cannot be told, which callers treat as "not there".
inline bool path_exists(const std::string& path) {
  struct stat status {};
  return file_system().stat(path.c_str(), &status) == 0;
}

inline bool is_directory(const std::string& path) {
  struct stat status {};
  return file_system().stat(path.c_str(), &status) == 0 && S_ISDIR(status.st_mode);
}

// The whole of the regular file `path`. Throws IoError naming it when it
// cannot be opened or read whole (a file that shrinks while read included).
inline std::string read_whole_file(const std::string& path) {
  FileSystem& fs = file_system();
  const ReadDescriptor fd(fs.open(path.c_str(), O_RDONLY | O_CLOEXEC, 0));
  if (fd.get() < 0) throw_system_error(ErrorId::io_open, path, "opening the file", errno);
  struct stat status {};
  if (fs.fstat(fd.get(), &status) != 0) throw_system_error(ErrorId::io_read, path, "fstat", errno);
  if (!S_ISREG(status.st_mode)) {
    throw IoError(ErrorId::io_read, path, "", "expected a regular file, found another kind of file");
  }
  std::string text(static_cast<std::size_t>(status.st_size), '\0');
  for (std::size_t done = 0; done < text.size();) {
    const long got = fs.pread(fd.get(), text.data() + done, text.size() - done, done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) throw_system_error(ErrorId::io_read, path, "reading the file", errno);
    if (got == 0) {
      throw IoError(ErrorId::io_read, path, "",
                    join({"expected ", text.size(), " bytes, found ", done, ": the file shrank while it was read"}));
    }
    done += static_cast<std::size_t>(got);
  }
  return text;
}

// Creates `directory` and its missing parents, like `mkdir -p`. With
// `durable`, each directory it creates is on disk before it returns: a new
// directory's name lives in its parent, which only an fsync of the parent
// makes survive a power loss (and with it every checkpoint inside).
inline void create_directories(const std::string& directory, bool durable) {
  FileSystem& fs = file_system();
  struct stat status {};
  const auto expect_directory = [&] {
    if (S_ISDIR(status.st_mode)) return;
    throw IoError(ErrorId::io_open, directory, "", "expected a directory, found another kind of file");
  };
  if (fs.stat(directory.c_str(), &status) == 0) return expect_directory();
  if (errno != ENOENT) throw_system_error(ErrorId::io_open, directory, "stat", errno);
  const std::string parent = directory_of(directory);
  if (parent != directory && parent != "." && parent != "/") create_directories(parent, durable);
  if (fs.mkdir(directory.c_str(), 0777) == 0) {
    if (durable) fsync_directory(parent);
    return;
  }
  // Another process may have created it meanwhile: fine, if as a directory.
  if (errno != EEXIST) throw_system_error(ErrorId::io_open, directory, "creating the directory", errno);
  if (fs.stat(directory.c_str(), &status) != 0) throw_system_error(ErrorId::io_open, directory, "stat", errno);
  expect_directory();
}

}  // namespace ckpt::detail

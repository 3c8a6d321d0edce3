#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
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

// A file that appears under its final name complete or not at all: bytes go
// to a temp file in the same directory (so the rename stays within one file
// system), which commit() fsyncs and renames over `path`. Destroying an
// uncommitted AtomicFile removes the temp file; any old file at `path` is
// never touched before the rename.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path) : path_(std::move(path)), directory_(directory_of(path_)) {
    const std::string name = file_name_of(path_);
    if (name.empty() || name == "." || name == "..") {
      throw ArgumentError(ErrorId::argument_invalid, path_, "", "expected a path naming a file, found a directory");
    }
    static std::atomic<std::uint64_t> counter{0};
    for (int attempt = 0;; ++attempt) {
      const auto clock = static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
      temp_path_ = directory_ + "/." + name + std::string(temp_marker) + std::to_string(::getpid()) + "-" +
                   std::to_string(counter.fetch_add(1)) + "-" + std::to_string(clock % 1000000007u);
      fd_ = file_system().open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0) return;
      if (errno != EEXIST || attempt == 100) {
        throw_system_error(ErrorId::io_open, path_, "open (creating the temp file '" + temp_path_ + "')", errno);
      }
    }
  }

  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  ~AtomicFile() {
    if (fd_ >= 0) file_system().close(fd_);
    if (!committed_) file_system().unlink(temp_path_.c_str());
  }

  const std::string& path() const noexcept { return path_; }
  const std::string& temp_path() const noexcept { return temp_path_; }

  // Writes all `size` bytes, in pieces the kernel accepts in one call.
  void write(const void* data, std::size_t size) {
    constexpr std::size_t max_piece = std::size_t(1) << 30;
    const auto* bytes = static_cast<const std::byte*>(data);
    while (size > 0) {
      const long written = file_system().write(fd_, bytes, size < max_piece ? size : max_piece);
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) throw_system_error(ErrorId::io_write, path_, "write", errno);
      if (written == 0) throw IoError(ErrorId::io_write, path_, "", "write made no progress");
      bytes += written;
      size -= static_cast<std::size_t>(written);
    }
  }

  // Publishes the file under its final name. With `durable`, the data is on
  // disk before the rename and the rename is on disk before this returns.
  void commit(bool durable) {
    FileSystem& fs = file_system();
    if (durable && fs.fsync(fd_) != 0) throw_system_error(ErrorId::io_sync, path_, "fsync", errno);
    const int fd = fd_;
    fd_ = -1;
    if (fs.close(fd) != 0) throw_system_error(ErrorId::io_write, path_, "close", errno);
    if (fs.rename(temp_path_.c_str(), path_.c_str()) != 0) {
      throw_system_error(ErrorId::io_rename, path_, "rename from '" + temp_path_ + "'", errno);
    }
    committed_ = true;
    if (durable) fsync_directory(directory_);
  }

 private:
  std::string path_;
  std::string directory_;
  std::string temp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// A read-only, shared memory mapping of a whole file. Pages are read on first
// touch, so mapping a large file costs nothing until its bytes are used.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_system_error(ErrorId::io_open, path, "open", errno);
    struct stat status {};
    if (::fstat(fd, &status) != 0) {
      const int error = errno;
      ::close(fd);
      throw_system_error(ErrorId::io_read, path, "fstat", error);
    }
    if (!S_ISREG(status.st_mode)) {
      ::close(fd);
      throw IoError(ErrorId::io_open, path, "", "expected a regular file, found another kind of file");
    }
    size_ = static_cast<std::uint64_t>(status.st_size);
    if (size_ > 0) {
      void* address = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
      if (address == MAP_FAILED) {
        const int error = errno;
        ::close(fd);
        throw_system_error(ErrorId::io_map, path, "mmap", error);
      }
      data_ = static_cast<const std::byte*>(address);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<std::byte*>(data_), size_);
  }

  const std::string& path() const noexcept { return path_; }
  const std::byte* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }

  // Says that the bytes [offset, offset + size) are about to be read whole,
  // so a cold file is read ahead in large requests rather than faulted in a
  // few pages at a time. Only advice: a failure changes nothing but speed.
  // Small ranges are left to the read-around of their first page fault,
  // which costs no system call per tensor of a file of many small ones.
  void will_read(std::uint64_t offset, std::uint64_t size) const noexcept {
    constexpr std::uint64_t min_advised_bytes = std::uint64_t(1) << 20;
    if (size < min_advised_bytes) return;
    static const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t first_page = offset / page * page;
    ::madvise(const_cast<std::byte*>(data_) + first_page, offset + size - first_page, MADV_WILLNEED);
  }

 private:
  std::string path_;
  const std::byte* data_ = nullptr;
  std::uint64_t size_ = 0;
};

}  // namespace ckpt::detail

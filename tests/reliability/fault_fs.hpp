#pragma once

// A test-only detail::FileSystem that records every mutating call ckpt makes
// and can make one of them fail (with an errno, as the kernel would) or crash
// the process right before it happens. Installed with ScopedFileSystem.

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/ckpt.hpp"

namespace ckpt::test {

enum class FsOp { open, write, fsync, close, rename, unlink };
inline constexpr FsOp all_fs_ops[] = {FsOp::open, FsOp::write, FsOp::fsync, FsOp::close, FsOp::rename, FsOp::unlink};

inline const char* fs_op_name(FsOp op) {
  switch (op) {
    case FsOp::open: return "open";
    case FsOp::write: return "write";
    case FsOp::fsync: return "fsync";
    case FsOp::close: return "close";
    case FsOp::rename: return "rename";
    case FsOp::unlink: return "unlink";
  }
  return "?";
}

// One recorded call: the operation and the path it concerned (for calls on a
// descriptor, the path it was opened with; for rename, the source).
struct FsCall {
  FsOp op;
  std::string path;
  std::string target;  // rename destination
};

// The exit status of a child that hit its simulated crash.
inline constexpr int crash_exit_code = 86;

class FaultFileSystem : public detail::FileSystem {
 public:
  // The `nth` (1-based) call of `op` fails with `error_number` and does nothing.
  void fail_at(FsOp op, std::uint64_t nth, int error_number) {
    std::lock_guard<std::mutex> lock(mutex_);
    fail_op_ = op;
    fail_nth_ = nth;
    fail_errno_ = error_number;
  }
  // The process _exit()s right before the `nth` mutating call of any kind, as
  // a kill -9 or a power cut of the process (not of the page cache) would.
  void crash_at(std::uint64_t nth) {
    std::lock_guard<std::mutex> lock(mutex_);
    crash_nth_ = nth;
  }
  // Writes succeed until `bytes` in total were written, then the write that
  // crosses the limit writes what fits and the next one fails with ENOSPC,
  // as a full disk behaves.
  void limit_space(std::uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    space_left_ = bytes;
    space_limited_ = true;
  }
  // Legal but unusual kernel behaviour the writer must cope with: every write
  // stores at most `max_bytes`, and every other write is interrupted (EINTR).
  void make_writes_short(std::size_t max_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    short_write_bytes_ = max_bytes;
  }

  std::vector<FsCall> trace() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return trace_;
  }
  std::uint64_t count(FsOp op) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = counts_.find(op);
    return found == counts_.end() ? 0 : found->second;
  }
  std::uint64_t total_calls() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return trace_.size();
  }

  int open(const char* path, int flags, unsigned mode) override {
    if (!enter(FsOp::open, path)) return -1;
    const int fd = detail::FileSystem::open(path, flags, mode);
    if (fd >= 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      fd_paths_[fd] = path;
    }
    return fd;
  }
  long write(int fd, const void* data, std::size_t size) override {
    if (!enter(FsOp::write, path_of(fd))) return -1;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (short_write_bytes_ != 0) {
        if (++writes_seen_ % 2 == 0) {
          errno = EINTR;
          return -1;
        }
        size = std::min(size, short_write_bytes_);
      }
      if (space_limited_) {
        if (space_left_ == 0 && size != 0) {
          errno = ENOSPC;
          return -1;
        }
        size = static_cast<std::size_t>(std::min<std::uint64_t>(size, space_left_));
      }
    }
    const long written = detail::FileSystem::write(fd, data, size);
    if (written > 0 && space_limited_) {
      std::lock_guard<std::mutex> lock(mutex_);
      space_left_ -= static_cast<std::uint64_t>(written);
    }
    return written;
  }
  int fsync(int fd) override {
    if (!enter(FsOp::fsync, path_of(fd))) return -1;
    return detail::FileSystem::fsync(fd);
  }
  int close(int fd) override {
    const std::string path = path_of(fd);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fd_paths_.erase(fd);
    }
    if (!enter(FsOp::close, path)) {
      // Linux releases the descriptor even when close reports an error.
      const int injected = errno;
      detail::FileSystem::close(fd);
      errno = injected;
      return -1;
    }
    return detail::FileSystem::close(fd);
  }
  int rename(const char* from, const char* to) override {
    if (!enter(FsOp::rename, from, to)) return -1;
    return detail::FileSystem::rename(from, to);
  }
  int unlink(const char* path) override {
    if (!enter(FsOp::unlink, path)) return -1;
    return detail::FileSystem::unlink(path);
  }

 private:
  // Records the call; crashes or reports the injected failure (false, errno set).
  bool enter(FsOp op, const std::string& path, const std::string& target = {}) {
    std::lock_guard<std::mutex> lock(mutex_);
    trace_.push_back({op, path, target});
    const std::uint64_t nth_of_op = ++counts_[op];
    if (crash_nth_ != 0 && trace_.size() == crash_nth_) _exit(crash_exit_code);
    if (fail_nth_ != 0 && op == fail_op_ && nth_of_op == fail_nth_) {
      errno = fail_errno_;
      return false;
    }
    return true;
  }
  std::string path_of(int fd) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = fd_paths_.find(fd);
    return found == fd_paths_.end() ? "fd " + std::to_string(fd) : found->second;
  }

  mutable std::mutex mutex_;
  std::vector<FsCall> trace_;
  std::map<FsOp, std::uint64_t> counts_;
  std::map<int, std::string> fd_paths_;
  FsOp fail_op_ = FsOp::write;
  std::uint64_t fail_nth_ = 0;
  int fail_errno_ = EIO;
  std::uint64_t crash_nth_ = 0;
  bool space_limited_ = false;
  std::uint64_t space_left_ = 0;
  std::size_t short_write_bytes_ = 0;
  std::uint64_t writes_seen_ = 0;
};

// Routes ckpt's file-system calls through `fs` for the scope's lifetime.
class ScopedFileSystem {
 public:
  explicit ScopedFileSystem(detail::FileSystem& fs) { detail::set_file_system(&fs); }
  ~ScopedFileSystem() { detail::set_file_system(nullptr); }
  ScopedFileSystem(const ScopedFileSystem&) = delete;
  ScopedFileSystem& operator=(const ScopedFileSystem&) = delete;
};

enum class ChildOutcome { crashed, completed, threw };

// Runs `work` in a forked child whose file system crashes before its `nth`
// call. The parent then inspects what the "crashed" process left on disk.
inline ChildOutcome run_crashing_at(std::uint64_t nth, const std::function<void()>& work) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    FaultFileSystem fs;
    fs.crash_at(nth);
    ScopedFileSystem scoped(fs);
    try {
      work();
    } catch (...) {
      _exit(1);
    }
    _exit(0);
  }
  int status = 0;
  if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
    throw std::runtime_error("crash-test child did not exit normally");
  }
  switch (WEXITSTATUS(status)) {
    case crash_exit_code: return ChildOutcome::crashed;
    case 0: return ChildOutcome::completed;
    default: return ChildOutcome::threw;
  }
}

}  // namespace ckpt::test

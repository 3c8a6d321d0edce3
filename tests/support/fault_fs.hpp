#pragma once

// The tests' one detail::FileSystem: it records every file-system call ckpt
// makes and can make one of them fail (with an errno, as the kernel would),
// crash the process right before it (or kill it with SIGKILL before a call
// it names), fill the disk, shorten or interrupt
// writes, hold writes until the test lets them through, or serve a directory
// that exists only for calls made through it. Installed with ScopedFileSystem.

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "ckpt/detail/os/file_system.hpp"

namespace ckpt::test {

// One per virtual function of detail::FileSystem.
enum class FsOp {
  open,
  close,
  fstat,
  stat,
  pread,
  map,
  unmap,
  list,
  pwrite,
  ftruncate,
  fsync,
  writeback,
  rename,
  unlink,
  mkdir,
  flock
};
inline constexpr FsOp all_fs_ops[] = {
    FsOp::open,   FsOp::close,     FsOp::fstat, FsOp::stat,      FsOp::pread,  FsOp::map,    FsOp::unmap, FsOp::list,
    FsOp::pwrite, FsOp::ftruncate, FsOp::fsync, FsOp::writeback, FsOp::rename, FsOp::unlink, FsOp::mkdir, FsOp::flock};

inline const char* fs_op_name(FsOp op) {
  switch (op) {
    case FsOp::open: return "open";
    case FsOp::close: return "close";
    case FsOp::fstat: return "fstat";
    case FsOp::stat: return "stat";
    case FsOp::pread: return "pread";
    case FsOp::map: return "mmap";
    case FsOp::unmap: return "munmap";
    case FsOp::list: return "list";
    case FsOp::pwrite: return "pwrite";
    case FsOp::ftruncate: return "ftruncate";
    case FsOp::fsync: return "fsync";
    case FsOp::writeback: return "sync_file_range";
    case FsOp::rename: return "rename";
    case FsOp::unlink: return "unlink";
    case FsOp::mkdir: return "mkdir";
    case FsOp::flock: return "flock";
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
  // The `nth` (1-based) call of `op` fails with `error_number` and does
  // nothing (close and munmap release what they were given all the same, as
  // Linux does when it reports their failure). Several calls may be made to
  // fail, e.g. a write and the cleanup after it.
  void fail_at(FsOp op, std::uint64_t nth, int error_number) {
    std::lock_guard<std::mutex> lock(mutex_);
    failures_[{op, nth}] = error_number;
  }
  // The process _exit()s right before the `nth` call of any kind, as a
  // kill -9 or a power cut of the process (not of the page cache) would.
  void crash_at(std::uint64_t nth) {
    std::lock_guard<std::mutex> lock(mutex_);
    crash_nth_ = nth;
  }
  // The process kills itself with SIGKILL right before the first call of
  // `op` that `matches` (by its path, and for rename its target): a kill -9
  // at a chosen point of a save, e.g. of one rank of an MPI job.
  void kill_before(FsOp op, std::function<bool(const FsCall&)> matches) {
    std::lock_guard<std::mutex> lock(mutex_);
    kill_op_ = op;
    kill_matches_ = std::move(matches);
  }
  // Writes succeed until `bytes` in total were written, then the write that
  // crosses the limit writes what fits and the next one fails with ENOSPC,
  // as a full disk behaves.
  void limit_space(std::uint64_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    space_left_ = bytes;
    space_limited_ = true;
  }
  // Writes from the calling thread fail with ENOSPC from now on, as
  // limit_space(0) makes every thread's: one rank's full disk when ranks run
  // on threads (the rank's own thread writes its file).
  void fill_disk_of_this_thread() {
    std::lock_guard<std::mutex> lock(mutex_);
    full_threads_.insert(std::this_thread::get_id());
  }
  // Legal but unusual kernel behaviour the writer must cope with: every write
  // stores at most `max_bytes`, and every other write is interrupted (EINTR).
  void make_writes_short(std::size_t max_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    short_write_bytes_ = max_bytes;
  }
  // Writes block until release_writes(): keeps a save in flight while the
  // test acts.
  void hold_writes() {
    std::lock_guard<std::mutex> lock(mutex_);
    writes_held_ = true;
  }
  void release_writes() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      writes_held_ = false;
    }
    writes_released_.notify_all();
  }

  // Paths under `virtual_root` (which must not exist) name the files under
  // `real_root`: the files are reachable through this object only, so an
  // operation that bypasses the seam fails.
  void serve(const std::string& virtual_root, const std::string& real_root) {
    std::lock_guard<std::mutex> lock(mutex_);
    virtual_root_ = virtual_root;
    real_root_ = real_root;
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
    const int fd = detail::FileSystem::open(real(path).c_str(), flags, mode);
    if (fd >= 0) {
      std::lock_guard<std::mutex> lock(mutex_);
      fd_paths_[fd] = path;
    }
    return fd;
  }
  int close(int fd) override {
    const std::string path = path_of(fd);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fd_paths_.erase(fd);
    }
    if (!enter(FsOp::close, path)) return release_anyway([&] { detail::FileSystem::close(fd); });
    return detail::FileSystem::close(fd);
  }
  int fstat(int fd, struct stat* status) override {
    if (!enter(FsOp::fstat, path_of(fd))) return -1;
    return detail::FileSystem::fstat(fd, status);
  }
  int stat(const char* path, struct stat* status) override {
    if (!enter(FsOp::stat, path)) return -1;
    return detail::FileSystem::stat(real(path).c_str(), status);
  }
  long pread(int fd, void* data, std::size_t size, std::uint64_t offset) override {
    if (!enter(FsOp::pread, path_of(fd))) return -1;
    return detail::FileSystem::pread(fd, data, size, offset);
  }
  void* map_read_only(int fd, std::size_t size) override {
    if (!enter(FsOp::map, path_of(fd))) return MAP_FAILED;
    return detail::FileSystem::map_read_only(fd, size);
  }
  int unmap(void* address, std::size_t size) override {
    if (!enter(FsOp::unmap, "")) return release_anyway([&] { detail::FileSystem::unmap(address, size); });
    return detail::FileSystem::unmap(address, size);
  }
  int list_directory(const char* path, std::vector<std::string>& names) override {
    if (!enter(FsOp::list, path)) return -1;
    return detail::FileSystem::list_directory(real(path).c_str(), names);
  }
  long pwrite(int fd, const void* data, std::size_t size, std::uint64_t offset) override {
    if (!enter(FsOp::pwrite, path_of(fd))) return -1;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      writes_released_.wait(lock, [&] { return !writes_held_; });
      if (short_write_bytes_ != 0) {
        if (++writes_seen_ % 2 == 0) {
          errno = EINTR;
          return -1;
        }
        size = std::min(size, short_write_bytes_);
      }
      const bool disk_full =
          full_threads_.count(std::this_thread::get_id()) != 0 || (space_limited_ && space_left_ == 0);
      if (disk_full && size != 0) {
        errno = ENOSPC;
        return -1;
      }
      if (space_limited_) size = static_cast<std::size_t>(std::min<std::uint64_t>(size, space_left_));
    }
    const long written = detail::FileSystem::pwrite(fd, data, size, offset);
    if (written > 0 && space_limited_) {
      std::lock_guard<std::mutex> lock(mutex_);
      space_left_ -= static_cast<std::uint64_t>(written);
    }
    return written;
  }
  int ftruncate(int fd, std::uint64_t size) override {
    if (!enter(FsOp::ftruncate, path_of(fd))) return -1;
    return detail::FileSystem::ftruncate(fd, size);
  }
  int fsync(int fd) override {
    if (!enter(FsOp::fsync, path_of(fd))) return -1;
    return detail::FileSystem::fsync(fd);
  }
  int start_writeback(int fd, std::uint64_t offset, std::uint64_t size) override {
    if (!enter(FsOp::writeback, path_of(fd))) return -1;
    return detail::FileSystem::start_writeback(fd, offset, size);
  }
  int rename(const char* from, const char* to) override {
    if (!enter(FsOp::rename, from, to)) return -1;
    return detail::FileSystem::rename(real(from).c_str(), real(to).c_str());
  }
  int unlink(const char* path) override {
    if (!enter(FsOp::unlink, path)) return -1;
    return detail::FileSystem::unlink(real(path).c_str());
  }
  int mkdir(const char* path, unsigned mode) override {
    if (!enter(FsOp::mkdir, path)) return -1;
    return detail::FileSystem::mkdir(real(path).c_str(), mode);
  }
  int flock(int fd, int operation) override {
    if (!enter(FsOp::flock, path_of(fd))) return -1;
    return detail::FileSystem::flock(fd, operation);
  }

 private:
  // Records the call; crashes or reports the injected failure (false, errno set).
  bool enter(FsOp op, const std::string& path, const std::string& target = {}) {
    std::lock_guard<std::mutex> lock(mutex_);
    trace_.push_back({op, path, target});
    const std::uint64_t nth_of_op = ++counts_[op];
    if (crash_nth_ != 0 && trace_.size() == crash_nth_) _exit(crash_exit_code);
    if (kill_matches_ && op == kill_op_ && kill_matches_(trace_.back())) {
      std::fflush(stdout);  // what the process printed so far reaches the test
      ::raise(SIGKILL);
    }
    if (const auto failure = failures_.find({op, nth_of_op}); failure != failures_.end()) {
      errno = failure->second;
      return false;
    }
    return true;
  }
  // An injected failure of a call that releases a resource: released anyway,
  // and the failure reported.
  template <class Release>
  static int release_anyway(Release release) {
    const int injected = errno;
    release();
    errno = injected;
    return -1;
  }
  std::string real(const std::string& path) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (virtual_root_.empty() || path.compare(0, virtual_root_.size(), virtual_root_) != 0) return path;
    return real_root_ + path.substr(virtual_root_.size());
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
  std::map<std::pair<FsOp, std::uint64_t>, int> failures_;  // (call, nth of it) -> errno
  std::uint64_t crash_nth_ = 0;
  FsOp kill_op_ = FsOp::open;
  std::function<bool(const FsCall&)> kill_matches_;
  bool space_limited_ = false;
  std::uint64_t space_left_ = 0;
  std::set<std::thread::id> full_threads_;
  std::size_t short_write_bytes_ = 0;
  std::uint64_t writes_seen_ = 0;
  bool writes_held_ = false;
  std::condition_variable writes_released_;
  std::string virtual_root_;
  std::string real_root_;
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

#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

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
      temp_path_ =
          join({directory_, "/.", name, temp_marker, ::getpid(), "-", counter.fetch_add(1), "-", clock % 1000000007u});
      fd_ = file_system().open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd_ >= 0) return;
      if (errno != EEXIST || attempt == 100) {
        throw_system_error(ErrorId::io_open, path_, join({"open (creating the temp file '", temp_path_, "')"}), errno);
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

  // Appends all `size` bytes after the furthest byte written so far.
  void write(const void* data, std::size_t size) { write_at(end_, data, size); }

  // Writes all `size` bytes at `offset`, in pieces the kernel accepts in one
  // call (a writer that patches what it wrote earlier, like libzip, seeks).
  void write_at(std::uint64_t offset, const void* data, std::size_t size) {
    const std::size_t max_piece = write_back_ ? write_back_step : std::size_t(1) << 30;
    const auto* bytes = static_cast<const std::byte*>(data);
    while (size > 0) {
      const long written = file_system().pwrite(fd_, bytes, size < max_piece ? size : max_piece, offset);
      if (written < 0 && errno == EINTR) continue;
      if (written < 0) throw_system_error(ErrorId::io_write, path_, "write", errno);
      if (written == 0) throw IoError(ErrorId::io_write, path_, "", "write made no progress");
      if (write_back_) note_written(offset, static_cast<std::uint64_t>(written));
      bytes += written;
      size -= static_cast<std::size_t>(written);
      offset += static_cast<std::uint64_t>(written);
    }
    if (offset > end_) end_ = offset;
  }

  // For a file whose data will be fsynced (by commit(true), or by a caller
  // that fsyncs it by name once committed): from now on, every
  // write_back_step bytes written start on their way to disk at once.
  // Without it the kernel keeps them dirty in memory until its flusher
  // wakes or the fsync comes, and the fsync then waits for most of the file;
  // with it the disk works while the save hashes, encodes and writes the
  // rest, and the fsync waits for the last few megabytes.
  void write_back_as_written() noexcept { write_back_ = true; }

  // One past the furthest byte written so far.
  std::uint64_t size() const noexcept { return end_; }

  // Puts the bytes written so far on disk ahead of commit(): a save with CPU
  // work left after writing most of its bytes lets the disk take them
  // meanwhile, and commit's fsync has little left to wait for.
  void sync_written() {
    if (file_system().fsync(fd_) != 0) throw_system_error(ErrorId::io_sync, path_, "fsync", errno);
    unsent_begin_ = unsent_end_ = 0;
  }

  // Publishes the file under its final name. With `durable`, the data is on
  // disk before the rename and the rename is on disk before this returns.
  void commit(bool durable) {
    FileSystem& fs = file_system();
    if (durable) sync_written();
    const int fd = fd_;
    fd_ = -1;
    if (fs.close(fd) != 0) throw_system_error(ErrorId::io_write, path_, "close", errno);
    if (fs.rename(temp_path_.c_str(), path_.c_str()) != 0) {
      throw_system_error(ErrorId::io_rename, path_, join({"rename from '", temp_path_, "'"}), errno);
    }
    committed_ = true;
    if (durable) fsync_directory(directory_);
  }

 private:
  // Large enough that the calls cost nothing next to the bytes (one per
  // 8 MiB), small enough that a save of a few hundred megabytes keeps the
  // disk busy from its first tensor.
  static constexpr std::size_t write_back_step = std::size_t(8) << 20;

  // Starts write-back of the written bytes not yet sent once they span
  // write_back_step. Its result is ignored: see FileSystem::start_writeback.
  void note_written(std::uint64_t offset, std::uint64_t size) {
    if (unsent_end_ == unsent_begin_) {
      unsent_begin_ = offset;
      unsent_end_ = offset + size;
    } else {
      unsent_begin_ = std::min(unsent_begin_, offset);
      unsent_end_ = std::max(unsent_end_, offset + size);
    }
    if (unsent_end_ - unsent_begin_ < write_back_step) return;
    file_system().start_writeback(fd_, unsent_begin_, unsent_end_ - unsent_begin_);
    unsent_begin_ = unsent_end_ = 0;
  }

  std::string path_;
  std::string directory_;
  std::string temp_path_;
  int fd_ = -1;
  std::uint64_t end_ = 0;
  bool committed_ = false;
  bool write_back_ = false;
  // The range of bytes written since write-back was last started.
  std::uint64_t unsent_begin_ = 0;
  std::uint64_t unsent_end_ = 0;
};

}  // namespace ckpt::detail

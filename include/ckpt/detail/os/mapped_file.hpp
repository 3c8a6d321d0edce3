#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <string>

#include "ckpt/detail/os/file_system.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// A read-only, shared memory mapping of a whole file. Pages are read on first
// touch, so mapping a large file costs nothing until its bytes are used.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    FileSystem& fs = file_system();
    // The descriptor is needed only to map: the mapping outlives it.
    const ReadDescriptor fd(fs.open(path.c_str(), O_RDONLY | O_CLOEXEC, 0));
    if (fd.get() < 0) throw_system_error(ErrorId::io_open, path, "open", errno);
    struct stat status {};
    if (fs.fstat(fd.get(), &status) != 0) throw_system_error(ErrorId::io_read, path, "fstat", errno);
    if (!S_ISREG(status.st_mode)) {
      throw IoError(ErrorId::io_open, path, "", "expected a regular file, found another kind of file");
    }
    size_ = static_cast<std::uint64_t>(status.st_size);
    if (size_ > 0) {
      void* address = fs.map_read_only(fd.get(), size_);
      if (address == MAP_FAILED) throw_system_error(ErrorId::io_map, path, "mmap", errno);
      data_ = static_cast<const std::byte*>(address);
    }
  }

  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  ~MappedFile() {
    if (data_ != nullptr) file_system().unmap(const_cast<std::byte*>(data_), size_);
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

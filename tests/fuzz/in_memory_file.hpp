#pragma once

// Hands bytes to readers that open files by path, without touching a disk:
// an in-memory file (memfd) reached through /proc/self/fd. Fast enough to
// feed thousands of inputs a second, and free of the file system's own
// flushing (ext4 flushes a truncated-and-rewritten file on close).

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace ckpt::fuzz {

// A path whose file holds exactly the given bytes; the same in-memory file
// is reused for every call in the process.
inline std::string in_memory_file(const void* data, std::size_t size) {
  static const int fd = ::memfd_create("ckpt-test-input", MFD_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, 0) != 0) std::abort();
  const auto* bytes = static_cast<const std::uint8_t*>(data);
  for (std::size_t done = 0; done < size;) {
    const ssize_t written = ::pwrite(fd, bytes + done, size - done, static_cast<off_t>(done));
    if (written <= 0) std::abort();
    done += static_cast<std::size_t>(written);
  }
  return "/proc/self/fd/" + std::to_string(fd);
}

}  // namespace ckpt::fuzz

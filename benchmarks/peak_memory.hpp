#pragma once

// Peak extra memory of one operation: the peak resident set (VmHWM) during it
// minus the resident set before it, read from /proc/self/status. It counts
// every thread, every allocator and a codec's own memory. Shared by
// ckpt_save_memory (in its own process) and ckpt_compare (in a child process,
// so that memory an earlier measurement left in the allocator cannot hide a
// later one's growth).

#include <malloc.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

namespace bench {

[[noreturn]] inline void peak_memory_failed(const std::string& message) {
  std::fprintf(stderr, "peak memory: %s\n", message.c_str());
  std::exit(1);
}

// A field of /proc/self/status in bytes ("VmRSS", "VmHWM").
inline std::uint64_t status_bytes(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.compare(0, field.size() + 1, field + ":") == 0) {
      std::istringstream value(line.substr(field.size() + 1));
      std::uint64_t kib = 0;
      value >> kib;
      return kib << 10;
    }
  }
  peak_memory_failed("no " + field + " in /proc/self/status");
}

// Resets the peak resident set (VmHWM) to the current one.
inline void reset_peak() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  if (!clear) peak_memory_failed("cannot reset the peak resident set through /proc/self/clear_refs");
}

// Runs `body` and returns how far the resident set rose above its level
// before it, in bytes.
template <class Body>
std::uint64_t peak_extra_bytes(const Body& body) {
  const std::uint64_t before = status_bytes("VmRSS");
  reset_peak();
  body();
  const std::uint64_t peak = status_bytes("VmHWM");
  return peak > before ? peak - before : 0;
}

// peak_extra_bytes of `body` run in a forked child. The child first hands the
// allocator's free memory back to the system (malloc_trim): memory freed by
// earlier work would otherwise be reused without raising the resident set.
// The parent's pages are shared with the child, so they count in "before".
template <class Body>
std::uint64_t peak_extra_bytes_in_child(const Body& body) {
  int channel[2];
  if (::pipe(channel) != 0) peak_memory_failed("pipe failed");
  const pid_t child = ::fork();
  if (child < 0) peak_memory_failed("fork failed");
  if (child == 0) {
    ::close(channel[0]);
    ::malloc_trim(0);
    const std::uint64_t extra = peak_extra_bytes(body);
    const bool sent = ::write(channel[1], &extra, sizeof extra) == static_cast<ssize_t>(sizeof extra);
    ::_exit(sent ? 0 : 1);
  }
  ::close(channel[1]);
  std::uint64_t extra = 0;
  const bool received = ::read(channel[0], &extra, sizeof extra) == static_cast<ssize_t>(sizeof extra);
  ::close(channel[0]);
  int status = 0;
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !received) {
    peak_memory_failed("the measuring child process failed");
  }
  return extra;
}

}  // namespace bench

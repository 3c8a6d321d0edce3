#pragma once

// A progress line for commands that read large inputs:
//   ckpt verify: 1.2 GiB of 10.5 GiB (11%), 1.3 GiB/s
// redrawn in place ('\r') on stderr and erased when done. It is drawn only
// when stderr is a terminal and the input is large enough to take a moment,
// so output that programs read (pipes, files, tests) never changes.

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <ostream>
#include <string>
#include <system_error>

#include "table.hpp"

namespace ckpt::cli {

// An input's size for the progress line; 0 when it has none (not a regular
// file), which the command itself then reports.
inline std::uint64_t input_bytes(const std::string& path) {
  std::error_code error;
  const std::uintmax_t size = std::filesystem::file_size(path, error);
  return error ? 0 : size;
}

// Smaller inputs are read before a line could be read: from a disk at
// 500 MB/s, 64 MiB take a seventh of a second.
inline constexpr std::uint64_t progress_min_bytes = std::uint64_t(64) << 20;

class ProgressLine {
 public:
  // `label` starts the line, e.g. "ckpt verify"; `total` is the input's size in bytes.
  ProgressLine(std::string label, std::uint64_t total, int fd = STDERR_FILENO)
      : label_(std::move(label)), total_(total), fd_(fd), shown_(total >= progress_min_bytes && ::isatty(fd) == 1) {
    draw();  // at once: the first step may be the slowest (a cold file)
  }
  ~ProgressLine() { clear(); }
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  bool shown() const noexcept { return shown_; }

  // `bytes` more are done.
  void advance(std::uint64_t bytes) { update(done_ + bytes); }

  // `done` bytes of the total are done. Redrawn at most 10 times a second:
  // a terminal shows no more, and drawing costs a system call.
  void update(std::uint64_t done) {
    done_ = std::min(done, total_);
    if (shown_ && (width_ == 0 || clock::now() - drawn_at_ >= std::chrono::milliseconds(100))) draw();
  }

  // Replaces the figures by `text`, for a stage that is not measured in bytes.
  void note(std::string text) {
    note_ = std::move(text);
    draw();
  }

  // Erases the line (and draws it again at the next update).
  void clear() {
    if (width_ == 0) return;
    write_all("\r" + std::string(width_, ' ') + "\r");
    width_ = 0;
  }

  // While it lives, what is printed to `out` appears above the line: the line
  // is erased now, and when it ends `out` is flushed and the line drawn again.
  class Above {
   public:
    Above(ProgressLine& line, std::ostream& out) : line_(line), out_(out) { line_.clear(); }
    ~Above() {
      if (!line_.shown_) return;
      out_.flush();
      line_.draw();
    }
    Above(const Above&) = delete;
    Above& operator=(const Above&) = delete;

   private:
    ProgressLine& line_;
    std::ostream& out_;
  };
  Above print_above(std::ostream& out) { return Above(*this, out); }

 private:
  using clock = std::chrono::steady_clock;

  std::string text() const {
    if (!note_.empty()) return label_ + ": " + note_;
    std::string text = label_ + ": " + human_bytes(done_) + " of " + human_bytes(total_) + " (" +
                       std::to_string(done_ * 100 / total_) + "%)";
    const double seconds = std::chrono::duration<double>(clock::now() - started_).count();
    if (done_ != 0 && seconds > 0) text += ", " + human_bytes(static_cast<std::uint64_t>(done_ / seconds)) + "/s";
    return text;
  }

  void draw() {
    if (!shown_) return;
    std::string line = text();
    // A line longer than the terminal would wrap, and '\r' could not erase it.
    winsize size{};
    if (::ioctl(fd_, TIOCGWINSZ, &size) == 0 && size.ws_col > 1 && line.size() >= size.ws_col) {
      line.resize(size.ws_col - 1u);
    }
    const std::size_t drawn = line.size();
    if (drawn < width_) line += std::string(width_ - drawn, ' ');  // covers the end of a longer line
    write_all("\r" + line);
    width_ = std::max(width_, drawn);
    drawn_at_ = clock::now();
  }

  // Progress is a courtesy: a failed write is not the command's failure.
  void write_all(const std::string& bytes) const {
    std::size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t result = ::write(fd_, bytes.data() + written, bytes.size() - written);
      if (result <= 0) return;
      written += static_cast<std::size_t>(result);
    }
  }

  std::string label_;
  std::uint64_t total_;
  int fd_;
  bool shown_;
  std::uint64_t done_ = 0;
  std::string note_;
  std::size_t width_ = 0;  // characters the line covers on the terminal, 0 when erased
  clock::time_point started_ = clock::now();
  clock::time_point drawn_at_{};
};

}  // namespace ckpt::cli

#pragma once

// Whole files as bytes, for tests that write a file, damage it and read it back.
// Kept free of GoogleTest so that tools built from the test tree (the fuzz
// corpus writer) can use it too.

#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>

namespace ckpt::test {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace ckpt::test

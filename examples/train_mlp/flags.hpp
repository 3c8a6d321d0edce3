#pragma once

// The command line of the demos (train_mlp and train_mlp_mpi).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace demo {

struct Flags {
  std::string dir;
  std::uint64_t steps = 300;
  std::uint64_t save_every = 25;
  std::size_t keep = 3;  // 0 keeps every checkpoint
  std::string codec = "raw";
  bool async = false;
  bool incremental = false;  // each save references the unchanged tensors of the previous one
};

[[noreturn]] inline void usage(const char* program, const char* problem) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s [--dir DIR] [--steps N] [--save-every K] [--keep K]\n"
               "       [--codec raw|zstd|shuffle+zstd] [--async] [--incremental]\n",
               program, problem, program);
  std::exit(2);
}

// Parses the flags over `flags`, which holds the program's defaults; a
// mistake prints the usage and exits with status 2.
inline Flags parse_flags(int argc, char** argv, const char* program, Flags flags) {
  const auto number = [program](const char* text, const std::string& flag) {
    char* end = nullptr;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (*text == '\0' || *end != '\0' || *text == '-') usage(program, (flag + " needs a whole number").c_str());
    return value;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--async" || flag == "--incremental") {
      (flag == "--async" ? flags.async : flags.incremental) = true;
      continue;
    }
    if (i + 1 == argc) usage(program, (flag + " needs a value").c_str());
    const char* value = argv[++i];
    if (flag == "--dir")
      flags.dir = value;
    else if (flag == "--steps")
      flags.steps = number(value, flag);
    else if (flag == "--save-every")
      flags.save_every = number(value, flag);
    else if (flag == "--keep")
      flags.keep = number(value, flag);
    else if (flag == "--codec")
      flags.codec = value;
    else
      usage(program, ("unknown flag " + flag).c_str());
  }
  if (flags.codec != "raw" && flags.codec != "zstd" && flags.codec != "shuffle+zstd") {
    usage(program, "--codec must be raw, zstd or shuffle+zstd");
  }
  if (flags.save_every == 0) usage(program, "--save-every must be at least 1");
  return flags;
}

}  // namespace demo

// The ckpt command-line tool: inspect, verify, convert and compare checkpoints.

#include <exception>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "ckpt/version.hpp"
#include "common.hpp"
#include "convert.hpp"
#include "diff.hpp"
#include "info.hpp"
#include "ls.hpp"
#include "trajectory.hpp"
#include "verify.hpp"

namespace ckpt::cli {
namespace {

struct Command {
  std::string_view name;
  std::string_view summary;
  std::string_view help;  // the usage line first
  CommandSpec spec;
  int (*run)(const Arguments&, std::ostream&, std::ostream&);
};

constexpr std::string_view exit_codes =
    "\n\nExit status: 0 on success, 1 when a problem is found or the operation fails, 2 on a usage error.\n";

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"ls",
       "list the checkpoints a CheckpointManager keeps in a directory",
       "Usage: ckpt ls DIR [--template T] [--json]\n\n"
       "Lists the checkpoints in DIR, files of a CheckpointManager and step directories of\n"
       "a DistributedCheckpointManager: step, epoch, time (UTC), size, ranks (that saved a\n"
       "step directory), metrics, file and status ('ok' when the header or index opens;\n"
       "'ckpt verify' checks the data).\n\n"
       "  --template T  the manager's name_template (default ckpt-{step:08}.safetensors)\n"
       "  --json        print a JSON array instead of a table\n",
       {{"--json"}, {"--template"}, 1, 1},
       run_ls},
      {"info",
       "show a file's tensors (dtype, shape, bytes, codec, ratio) and metadata",
       "Usage: ckpt info FILE|DIR [--json]\n\n"
       "Shows each tensor's name, dtype, shape and bytes, and for ckpt/safetensors files\n"
       "the stored bytes, codec and compression ratio; then the metadata.\n"
       "FILE: safetensors (.safetensors / .ckpt), .npz or HDF5 (.h5 / .hdf5), recognised\n"
       "by its content. DIR: a distributed checkpoint directory (its step, ranks, files,\n"
       "and each tensor's global shape and pieces).\n\n"
       "  --json  print one JSON object instead of text\n",
       {{"--json"}, {}, 1, 1},
       run_info},
      {"verify",
       "check every checksum of a file, a directory's checkpoints, or a distributed checkpoint",
       "Usage: ckpt verify FILE|DIR\n\n"
       "Reads every tensor and checks its checksum (CRC-32 for .npz members). For a\n"
       "directory, checks every .safetensors/.ckpt/.npz/.h5/.hdf5 file in it. Prints one line\n"
       "per good file and one per corrupt tensor, naming file and tensor. A distributed\n"
       "checkpoint directory is checked whole: its index, every file against it, every\n"
       "piece, and that the pieces cover each tensor without gap or overlap.\n\n"
       "Exit status: 0 when all is good, 1 when corruption is found, 2 on a usage error.\n",
       {{}, {}, 1, 1},
       run_verify},
      {"convert",
       "convert between ckpt/safetensors, .npz and .h5, or recompress",
       "Usage: ckpt convert IN OUT [--codec C] [--force]\n\n"
       "IN's format is recognised by its content, OUT's chosen by its extension:\n"
       ".safetensors/.ckpt, .npz, .h5/.hdf5. IN may be a distributed checkpoint\n"
       "directory: OUT then holds every tensor whole. BF16 and F8 tensors keep their real dtype\n"
       "through .npz and .h5 (see docs/interop.md).\n\n"
       "  --codec C  for .safetensors/.ckpt: raw (default), zstd[:LEVEL], shuffle+zstd[:LEVEL]\n"
       "             for .npz/.h5: raw (default) or deflate[:1-9]\n"
       "  --force    overwrite OUT if it exists (never done without it)\n",
       {{"--force"}, {"--codec"}, 2, 2},
       run_convert},
      {"diff",
       "compare two files tensor by tensor",
       "Usage: ckpt diff A B\n\n"
       "For each tensor: equal, the number of differing elements and the maximum absolute\n"
       "difference, a dtype or shape change, or present in one file only; then metadata.\n"
       "A and B may be in different formats, or distributed checkpoint directories.\n\n"
       "Exit status: 0 only if identical, 1 if different, 2 on a usage error.\n",
       {{}, {}, 2, 2},
       run_diff},
      {"trajectory",
       "statistics of tensors at every checkpoint of a run, as CSV",
       "Usage: ckpt trajectory RUN [--tensor GLOB]... [--stat S[,S...]]... [--template T] [--json]\n\n"
       "For each checkpoint the manager keeps in RUN (as 'ckpt ls' lists them), oldest\n"
       "first: one CSV row with step, epoch, time (seconds since 1970, UTC), each metric\n"
       "the manager recorded, then one column TENSOR:STAT per selected tensor and\n"
       "statistic; 'nan' where there is no value. Every checksum read is verified.\n\n"
       "  --tensor GLOB  the tensors ('*' any characters, '/' included; '?' one);\n"
       "                 repeatable; default all. A GLOB matching no tensor is an error.\n"
       "  --stat S,...   norm (default), mean, std, max_abs, dist_first, dist_prev, changed\n"
       "                 (see docs/cli.md); repeatable\n"
       "  --template T   the manager's name_template (default ckpt-{step:08}.safetensors)\n"
       "  --json         print a JSON array of checkpoints instead of CSV\n",
       {{"--json"}, {"--tensor", "--stat", "--template"}, 1, 1},
       run_trajectory},
  };
  return table;
}

void print_overview(std::ostream& out) {
  out << "Usage: ckpt COMMAND [ARGS...]\n\nInspect, verify, convert and compare checkpoints.\n\nCommands:\n";
  for (const Command& command : commands())
    out << "  " << command.name << std::string(12 - command.name.size(), ' ') << command.summary << "\n";
  out << "\nRun 'ckpt COMMAND --help' for a command's options." << exit_codes;
}

const Command* find_command(std::string_view name) {
  for (const Command& command : commands()) {
    if (command.name == name) return &command;
  }
  return nullptr;
}

int run(const std::vector<std::string>& words) {
  if (words.empty()) {
    print_overview(std::cerr);
    return exit_usage;
  }
  const std::string& first = words[0];
  if (first == "--help" || first == "-h" || (first == "help" && words.size() == 1)) {
    print_overview(std::cout);
    return exit_ok;
  }
  if (first == "--version") {
    std::cout << "ckpt " << CKPT_VERSION_MAJOR << "." << CKPT_VERSION_MINOR << "." << CKPT_VERSION_PATCH << "\n";
    return exit_ok;
  }
  const bool help_topic = first == "help";
  const Command* command = find_command(help_topic ? words[1] : first);
  if (command == nullptr) {
    std::cerr << "ckpt: unknown command '" << (help_topic ? words[1] : first) << "'\n\n";
    print_overview(std::cerr);
    return exit_usage;
  }
  if (help_topic) {
    std::cout << command->help;
    return exit_ok;
  }
  const std::string prefix = "ckpt " + std::string(command->name) + ": ";
  try {
    const Arguments args(std::vector<std::string>(words.begin() + 1, words.end()), command->spec);
    if (args.help()) {
      std::cout << command->help;
      return exit_ok;
    }
    return command->run(args, std::cout, std::cerr);
  } catch (const UsageError& error) {
    const std::string_view help = command->help;
    std::cerr << prefix << error.what() << "\n"
              << help.substr(0, help.find('\n') + 1) << "Run 'ckpt " << command->name << " --help' for details.\n";
    return exit_usage;
  } catch (const std::exception& error) {
    std::cerr << prefix << error.what() << "\n";
    return exit_problem;
  }
}

}  // namespace
}  // namespace ckpt::cli

int main(int argc, char** argv) { return ckpt::cli::run(std::vector<std::string>(argv + 1, argv + argc)); }

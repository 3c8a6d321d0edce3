#pragma once

// ckpt convert IN OUT [--codec C] [--force]: between ckpt / safetensors, .npz
// and .h5 (IN as its content shows, OUT by extension); with the same format on
// both sides, a recompression.

#include <ostream>
#include <string>

#include "args.hpp"
#include "common.hpp"
#include "formats.hpp"
#include "progress.hpp"
#include "table.hpp"

namespace ckpt::cli {

inline int run_convert(const Arguments& args, std::ostream& out, std::ostream& err) {
  const std::string& input = args.positionals()[0];
  const std::string& output = args.positionals()[1];
  require_existing(input);
  const FileFormat input_as = input_format(input);
  const FileFormat output_as = output_format(output);
  const std::string codec = args.value("--codec").value_or("raw");
  check_codec(output_as, codec);
  if (path_exists(output) && !args.flag("--force")) {
    err << "ckpt convert: '" << output << "' exists; pass --force to overwrite it\n";
    return exit_problem;
  }
  ProgressLine progress("ckpt convert", input_bytes(input));
  const TensorSet set = load_tensors(input, input_as, [&](std::uint64_t bytes) { progress.advance(bytes); });
  // The writers report nothing while they write: the line says what is going on.
  progress.note("read " + human_bytes(input_bytes(input)) + ", writing the output");
  save_tensors(output, output_as, set, codec);
  progress.clear();
  std::uint64_t tensor_bytes = 0;
  for (const auto& entry : set.tensors) tensor_bytes += entry.second.nbytes();
  out << "wrote " << output << ": " << set.tensors.size() << " tensors, " << human_bytes(tensor_bytes) << " (codec "
      << codec << ")\n";
  return exit_ok;
}

}  // namespace ckpt::cli

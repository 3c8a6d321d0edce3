#pragma once

// ckpt info FILE|DIR [--json]: each tensor's name, dtype, shape, bytes, codec
// and compression ratio, and the metadata; for an incremental checkpoint, its
// chain and where each referenced tensor is stored; for a distributed
// checkpoint directory, its step, ranks and files and each tensor's pieces.

#include <ostream>
#include <string>

#include <nlohmann/json.hpp>

#include "args.hpp"
#include "common.hpp"
#include "distributed.hpp"
#include "formats.hpp"
#include "table.hpp"

namespace ckpt::cli {

inline nlohmann::json tensor_entry(const std::string& name, DType dtype, const Shape& shape) {
  return {{"name", name}, {"dtype", dtype_name(dtype)}, {"shape", shape}, {"bytes", byte_size(dtype, shape)}};
}

// Container formats hide how each member is stored, so only ckpt files
// report stored bytes, codecs and ratios.
inline nlohmann::json describe_file(const std::string& path) {
  nlohmann::json report = {{"file", path}, {"tensors", nlohmann::json::array()}};
  std::uint64_t tensor_bytes = 0;
  const FileFormat format = input_format(path);
  if (format == FileFormat::distributed) return describe_checkpoint_directory(path);
  if (format == FileFormat::safetensors) {
    const Reader reader(path, ReadOptions{false, 1});
    std::uint64_t stored_bytes = 0;
    for (const TensorInfo& info : reader.tensors()) {
      nlohmann::json entry = tensor_entry(info.name, info.dtype, info.shape);
      entry["stored_bytes"] = info.stored_bytes;
      entry["codec"] = info.codec;
      entry["ratio"] =
          info.stored_bytes == 0 ? 1.0 : entry["bytes"].get<double>() / static_cast<double>(info.stored_bytes);
      if (!info.stored_in.empty()) entry["stored_in"] = info.stored_in;
      tensor_bytes += entry["bytes"].get<std::uint64_t>();
      stored_bytes += info.stored_bytes;
      report["tensors"].push_back(std::move(entry));
    }
    report["format"] = reader.written_by_ckpt() ? "ckpt" : "safetensors";
    report["format_version"] = reader.format_version();
    report["file_bytes"] = reader.file_size();
    report["stored_bytes"] = stored_bytes;
    report["ratio"] = stored_bytes == 0 ? 1.0 : static_cast<double>(tensor_bytes) / static_cast<double>(stored_bytes);
    report["metadata"] = metadata_of(reader);
    if (reader.chain_depth() != 0) {
      report["chain"] = {
          {"parent", reader.parent_file()}, {"depth", reader.chain_depth()}, {"sources", reader.source_files()}};
    }
  } else {
    const TensorSet set = load_tensors(path, format);
    for (const auto& [name, tensor] : set.tensors) {
      report["tensors"].push_back(tensor_entry(name, tensor.dtype(), tensor.shape()));
      tensor_bytes += tensor.nbytes();
    }
    report["format"] = format == FileFormat::npz ? "npz" : "hdf5";
    report["metadata"] = set.metadata;
  }
  report["tensor_bytes"] = tensor_bytes;
  return report;
}

inline void print_info(const nlohmann::json& report, std::ostream& out) {
  out << "file:     " << report["file"].get<std::string>() << " (" << report["format"].get<std::string>();
  if (report.contains("format_version") && report["format_version"] != 0) out << " format " << report["format_version"];
  out << ")\n";
  const bool stored = report.contains("stored_bytes");
  out << "tensors:  " << report["tensors"].size() << ", " << human_bytes(report["tensor_bytes"]);
  if (stored) {
    out << ", stored in " << human_bytes(report["stored_bytes"]) << " (ratio " << fixed(report["ratio"], 2) << ")";
  }
  out << "\n";
  if (report.contains("chain")) {
    // An incremental checkpoint: where its referenced tensors are stored.
    const nlohmann::json& chain = report["chain"];
    out << "chain:    depth " << chain["depth"] << " (saves since the last full one), parent "
        << chain["parent"].get<std::string>() << "\n          referenced tensors stored in:";
    for (const nlohmann::json& source : chain["sources"]) out << " " << source.get<std::string>();
    out << "\n";
  }
  out << "\n";
  std::vector<Row> rows;
  for (const nlohmann::json& tensor : report["tensors"]) {
    Row row{tensor["name"], tensor["dtype"], shape_to_string(tensor["shape"].get<Shape>()),
            std::to_string(tensor["bytes"].get<std::uint64_t>())};
    if (stored) {
      const bool referenced = tensor.contains("stored_in");
      row.insert(row.end(), {referenced ? "in " + tensor["stored_in"].get<std::string>()
                                        : std::to_string(tensor["stored_bytes"].get<std::uint64_t>()),
                             tensor["codec"], referenced ? "-" : fixed(tensor["ratio"], 2)});
    }
    rows.push_back(std::move(row));
  }
  Row header{"NAME", "DTYPE", "SHAPE", "BYTES"};
  if (stored) header.insert(header.end(), {"STORED", "CODEC", "RATIO"});
  print_table(out, header, rows);
  out << "\nmetadata: " << report["metadata"].dump(2) << "\n";
}

inline int run_info(const Arguments& args, std::ostream& out, std::ostream&) {
  const std::string& path = args.positionals()[0];
  require_existing(path);
  const nlohmann::json report = describe_file(path);
  if (args.flag("--json")) {
    out << report.dump(2) << "\n";
  } else if (report["format"] == "ckpt distributed") {
    print_checkpoint_directory(report, out);
  } else {
    print_info(report, out);
  }
  return exit_ok;
}

}  // namespace ckpt::cli

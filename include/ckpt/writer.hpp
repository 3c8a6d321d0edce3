#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/codec.hpp"
#include "ckpt/detail/checksum.hpp"
#include "ckpt/detail/chunked.hpp"
#include "ckpt/detail/header.hpp"
#include "ckpt/detail/io.hpp"
#include "ckpt/detail/thread_pool.hpp"
#include "ckpt/error.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt {

struct NamedTensor {
  std::string name;
  TensorView view;
};

struct SaveOptions {
  CodecPolicy codecs{"raw"};
  std::size_t chunk_bytes = std::size_t(4) << 20;  // raw bytes per codec chunk
  unsigned threads = 0;                           // encode threads; 0 = hardware_concurrency
  bool durable = true;                            // fsync file and directory
};

struct SaveStats {
  std::uint64_t file_bytes = 0;
  std::uint64_t tensor_bytes = 0;  // logical (decoded) bytes of all tensors
  double seconds = 0;
};

namespace detail {

inline constexpr std::size_t max_tensor_name_bytes = 1024;

// A tensor on its way into the file: where its stored bytes come from. Raw
// tensors point into the caller's memory; encoded ones own their encoding.
struct PlannedTensor {
  TensorRecord record;
  const std::byte* stored = nullptr;
  std::vector<std::byte> encoding;
};

inline void check_tensor_arguments(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::set<std::string_view> seen;
  for (const NamedTensor& tensor : tensors) {
    if (auto problem = tensor_name_problem(tensor.name)) {
      throw ArgumentError(ErrorId::argument_name, path, printable_name(tensor.name), *problem);
    }
    if (tensor.name.size() > max_tensor_name_bytes) {
      throw ArgumentError(ErrorId::argument_name, path, excerpt(tensor.name),
                          "expected a name of at most 1024 bytes, found " + std::to_string(tensor.name.size()));
    }
    if (!seen.insert(tensor.name).second) {
      throw ArgumentError(ErrorId::argument_duplicate_name, path, tensor.name,
                          "expected unique tensor names, found this name twice");
    }
    const TensorView& view = tensor.view;
    if (!checked_byte_size(view.dtype(), view.shape())) {
      throw ArgumentError(ErrorId::argument_invalid, path, tensor.name,
                          "shape " + shape_to_string(view.shape()) + " overflows 64 bits");
    }
    if (view.data() == nullptr && view.nbytes() != 0) {
      throw ArgumentError(ErrorId::argument_invalid, path, tensor.name,
                          "expected data for " + std::to_string(view.nbytes()) + " bytes, found a null pointer");
    }
  }
}

inline void encode_tensor(PlannedTensor& planned, const Codec& codec, const TensorView& view,
                          const SaveOptions& options, const std::string& path) {
  TensorRecord& record = planned.record;
  const std::size_t element_size = dtype_size(view.dtype());
  const std::size_t raw_bytes = view.nbytes();
  record.codec = codec.name();
  record.chunk_bytes = chunk_raw_bytes(options.chunk_bytes, element_size);
  record.raw_xxh3 = xxh3(view.data(), raw_bytes);
  if (raw_bytes != 0) {
    EncodedTensor encoded = encode_chunked(codec, view.data(), raw_bytes, element_size, record.chunk_bytes,
                                           options.threads, path, record.name);
    planned.encoding = std::move(encoded.bytes);
    record.chunk_sizes = std::move(encoded.chunk_sizes);
  }
  // Readers refuse denser chunks as hostile; better to fail here than to
  // write a file nobody can read.
  for (std::size_t i = 0; i < record.chunk_sizes.size(); ++i) {
    const std::uint64_t decoded = chunk_decoded_bytes(raw_bytes, record.chunk_bytes, i);
    if (!within_expansion(decoded, record.chunk_sizes[i])) {
      throw CodecError(ErrorId::codec_encode, path, record.name,
                       "codec '" + record.codec + "' encoded chunk " + std::to_string(i) + " of " +
                           std::to_string(decoded) + " bytes into " + std::to_string(record.chunk_sizes[i]) +
                           "; the format expects at least 1/65536 of the decoded size");
    }
  }
  planned.stored = planned.encoding.data();
  record.stored_dtype = DType::U8;
  record.stored_shape = {planned.encoding.size()};
}

// Codecs by spec for one save, so each spec is parsed once.
class CodecCache {
 public:
  const Codec& get(const std::string& spec, const std::string& path, const std::string& tensor) {
    auto found = codecs_.find(spec);
    if (found == codecs_.end()) {
      try {
        found = codecs_.emplace(spec, CodecRegistry::instance().make(spec)).first;
      } catch (const CodecError& error) {
        throw CodecError(error.id(), path, tensor, error_detail(error));
      } catch (const ArgumentError& error) {
        throw ArgumentError(error.id(), path, tensor, error_detail(error));
      }
    }
    return *found->second;
  }

 private:
  std::map<std::string, std::shared_ptr<const Codec>> codecs_;
};

// Checksums (and encodes) every tensor, then orders them as the format
// requires: element size descending, then name, so that every raw tensor sits
// on a multiple of its element size inside the 64-aligned data buffer.
inline std::vector<PlannedTensor> plan_tensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                               const SaveOptions& options) {
  std::vector<PlannedTensor> plan(tensors.size());
  CodecCache codecs;
  std::vector<const Codec*> chosen(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& tensor = tensors[i];
    chosen[i] = &codecs.get(options.codecs.spec_for(tensor.name, tensor.view.dtype()), path, tensor.name);
  }
  // Raw tensors are hashed in parallel; encoded ones parallelize over chunks.
  parallel_for(tensors.size(), options.threads, [&](std::size_t i) {
    const NamedTensor& tensor = tensors[i];
    TensorRecord& record = plan[i].record;
    record.name = tensor.name;
    record.dtype = record.stored_dtype = tensor.view.dtype();
    record.shape = record.stored_shape = tensor.view.shape();
    record.checksummed = true;
    std::size_t stored_size = tensor.view.nbytes();
    if (chosen[i]->name() == raw_codec) {
      plan[i].stored = tensor.view.data();
    } else {
      encode_tensor(plan[i], *chosen[i], tensor.view, options, path);
      stored_size = plan[i].encoding.size();
    }
    record.stored_xxh3 = xxh3(plan[i].stored, stored_size);
  });
  std::sort(plan.begin(), plan.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    const std::size_t size_a = dtype_size(a.record.stored_dtype), size_b = dtype_size(b.record.stored_dtype);
    return size_a != size_b ? size_a > size_b : a.record.name < b.record.name;
  });
  std::uint64_t offset = 0;
  for (PlannedTensor& planned : plan) {
    planned.record.begin = offset;
    offset += checked_byte_size(planned.record.stored_dtype, planned.record.stored_shape).value();
    planned.record.end = offset;
  }
  return plan;
}

}  // namespace detail

// Writes `tensors` and the JSON object `metadata` to `path` as a ckpt
// checkpoint (docs/format.md). Atomic: the bytes go to a temp file in the
// target directory, which is fsynced, renamed over `path` and the directory
// fsynced (without `durable`, only renamed). On failure the temp file is
// removed and an existing file at `path` stays untouched. Raw tensors are
// written straight from the caller's memory, never copied.
inline SaveStats write_checkpoint(const std::string& path, const std::vector<NamedTensor>& tensors,
                                  const nlohmann::json& metadata, const SaveOptions& options = {}) {
  const auto start = std::chrono::steady_clock::now();
  if (!metadata.is_object() && !metadata.is_null()) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected metadata to be a JSON object, found " + std::string(metadata.type_name()));
  }
  if (options.chunk_bytes == 0 || options.chunk_bytes > detail::max_chunk_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected chunk_bytes between 1 and 2^30, found " + std::to_string(options.chunk_bytes));
  }
  detail::check_tensor_arguments(path, tensors);
  const std::vector<detail::PlannedTensor> plan = detail::plan_tensors(path, tensors, options);

  std::vector<detail::TensorRecord> records;
  records.reserve(plan.size());
  for (const detail::PlannedTensor& planned : plan) records.push_back(planned.record);
  std::string header;
  try {
    header = detail::build_header(records, metadata.is_null() ? nlohmann::json::object() : metadata);
  } catch (const nlohmann::json::exception& error) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected metadata strings in UTF-8, found: " + std::string(error.what()));
  } catch (const ArgumentError& error) {
    throw ArgumentError(error.id(), path, "", detail::error_detail(error));
  }

  detail::AtomicFile file(path);
  file.write(header.data(), header.size());
  SaveStats stats;
  stats.file_bytes = header.size();
  for (const detail::PlannedTensor& planned : plan) {
    file.write(planned.stored, planned.record.stored_bytes());
    stats.file_bytes += planned.record.stored_bytes();
  }
  file.commit(options.durable);
  for (const NamedTensor& tensor : tensors) stats.tensor_bytes += tensor.view.nbytes();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return stats;
}

}  // namespace ckpt

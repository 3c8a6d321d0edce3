#pragma once

// How a save lays out its tensors before writing: arguments checked, every
// tensor checksummed (and encoded by its codec), then ordered and given its
// offsets as docs/format.md requires. The functions are templates only so
// that programs that never save do not compile them (see "Compile time" in
// docs/architecture.md).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/codecs/policy.hpp"
#include "ckpt/codecs/registry.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunk_table.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// How encoded tensors are chunked, and on how many threads.
struct EncodeSettings {
  std::size_t chunk_bytes;
  unsigned threads;
};

// A tensor on its way into the file: where its stored bytes come from. Raw
// tensors point into the caller's memory; encoded ones own their encoding.
struct PlannedTensor {
  TensorRecord record;
  const std::byte* stored = nullptr;
  std::vector<std::byte> encoding;
};

template <class = void>
void check_tensor_arguments(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::set<std::string_view> seen;
  for (const NamedTensor& tensor : tensors) {
    validate_name(tensor.name, path);
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

template <class = void>
void encode_tensor(PlannedTensor& planned, const Codec& codec, const TensorView& view, const EncodeSettings& settings,
                   const std::string& path) {
  TensorRecord& record = planned.record;
  const std::size_t element_size = dtype_size(view.dtype());
  const std::size_t raw_bytes = view.nbytes();
  record.codec = codec.name();
  record.chunk_bytes = chunk_raw_bytes(settings.chunk_bytes, element_size);
  record.raw_xxh3 = xxh3(view.data(), raw_bytes);
  if (raw_bytes != 0) {
    EncodedTensor encoded = encode_chunked(codec, view.data(), raw_bytes, element_size, record.chunk_bytes,
                                           settings.threads, path, record.name);
    planned.encoding = std::move(encoded.bytes);
    record.chunk_sizes = std::move(encoded.chunk_sizes);
  }
  // Readers refuse a table that breaks the format's rule (a chunk denser than
  // it allows) as hostile; better to fail here than to write a file nobody can read.
  if (auto problem = chunk_table_problem(raw_bytes, element_size, record.chunk_bytes, record.chunk_sizes,
                                         planned.encoding.size())) {
    throw CodecError(ErrorId::codec_encode, path, record.name,
                     "codec '" + record.codec + "' wrote chunks no reader accepts: " + *problem);
  }
  planned.stored = planned.encoding.data();
  record.stored_dtype = DType::U8;
  record.stored_shape = {planned.encoding.size()};
}

// The block checksums of format version 2 (docs/format.md, section 4): a
// raw tensor's stored bytes in blocks of `chunk_bytes` (within the format's
// bounds), an encoded tensor's chunks.
template <class = void>
void checksum_blocks(TensorRecord& record, const std::byte* stored, std::size_t chunk_bytes) {
  record.block_checksummed = true;
  std::uint64_t begin = 0;
  if (record.encoded()) {
    for (std::uint64_t size : record.chunk_sizes) {
      record.block_xxh3.push_back(xxh3(stored + begin, size));
      begin += size;
    }
    return;
  }
  record.block_bytes = std::clamp<std::uint64_t>(chunk_bytes, 1, max_block_bytes);
  const std::uint64_t stored_size = checked_byte_size(record.dtype, record.shape).value();
  for (; begin < stored_size; begin += record.block_bytes) {
    record.block_xxh3.push_back(xxh3(stored + begin, std::min(record.block_bytes, stored_size - begin)));
  }
}

// Codecs by spec for one save, so each spec is parsed once.
template <class = void>
class CodecCache {
 public:
  const Codec& get(const std::string& spec, const std::string& path, const std::string& tensor) {
    auto found = codecs_.find(spec);
    if (found == codecs_.end()) {
      try {
        found = codecs_.emplace(spec, CodecRegistry::instance().make(spec)).first;
      } catch (const Error& error) {
        error.rethrow_with(path, tensor);
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
template <class = void>
std::vector<PlannedTensor> plan_tensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                        const CodecPolicy& policy, const EncodeSettings& settings) {
  std::vector<PlannedTensor> plan(tensors.size());
  CodecCache<> codecs;
  std::vector<const Codec*> chosen(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& tensor = tensors[i];
    chosen[i] = &codecs.get(policy.spec_for(tensor.name, tensor.view.dtype()), path, tensor.name);
  }
  // Raw tensors are hashed in parallel; encoded ones parallelize over chunks.
  parallel_for(tensors.size(), settings.threads, [&](std::size_t i) {
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
      encode_tensor(plan[i], *chosen[i], tensor.view, settings, path);
      stored_size = plan[i].encoding.size();
    }
    record.stored_xxh3 = xxh3(plan[i].stored, stored_size);
    checksum_blocks(record, plan[i].stored, settings.chunk_bytes);
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

}  // namespace ckpt::detail

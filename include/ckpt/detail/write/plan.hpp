#pragma once

// How a save lays out its tensors before writing: arguments checked, each
// tensor's codec chosen, then ordered as docs/format.md requires. The
// functions are templates only so that programs that never save do not
// compile them (see "Compile time" in docs/architecture.md).

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
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// A tensor on its way into the file: its record (in file order) and where its
// bytes come from, the caller's memory. `codec` is null for a raw tensor.
struct PlannedTensor {
  TensorRecord record;
  const std::byte* data = nullptr;
  std::size_t raw_bytes = 0;
  std::size_t element_size = 1;
  const Codec* codec = nullptr;
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

// Chooses each tensor's codec and orders the tensors as the format requires:
// element size descending, then name, so that every raw tensor sits on a
// multiple of its element size inside the 64-aligned data buffer (encoded
// tensors are stored as U8). Records get their sizes of chunk and block
// tables; checksums, chunk sizes and the offsets after the first encoded
// tensor are filled in while the save streams (write/pipeline.hpp). `codecs`
// owns the codecs the plan points to.
template <class = void>
std::vector<PlannedTensor> plan_tensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                                        const CodecPolicy& policy, std::size_t chunk_bytes, CodecCache<>& codecs) {
  std::vector<PlannedTensor> plan(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& tensor = tensors[i];
    PlannedTensor& planned = plan[i];
    TensorRecord& record = planned.record;
    const Codec& codec = codecs.get(policy.spec_for(tensor.name, tensor.view.dtype()), path, tensor.name);
    planned.data = tensor.view.data();
    planned.raw_bytes = tensor.view.nbytes();
    planned.element_size = dtype_size(tensor.view.dtype());
    record.name = tensor.name;
    record.dtype = record.stored_dtype = tensor.view.dtype();
    record.shape = record.stored_shape = tensor.view.shape();
    record.checksummed = true;
    if (codec.name() == raw_codec) {
      record.block_bytes = chunk_bytes;
      record.blocks.resize(chunk_count(planned.raw_bytes, chunk_bytes));
      continue;
    }
    planned.codec = &codec;
    record.codec = codec.name();
    record.chunk_bytes = chunk_raw_bytes(chunk_bytes, planned.element_size);
    const std::size_t chunks = chunk_count(planned.raw_bytes, record.chunk_bytes);
    record.chunk_sizes.resize(chunks);
    record.blocks.resize(chunks);
    record.stored_dtype = DType::U8;
    record.stored_shape = {0};
  }
  std::sort(plan.begin(), plan.end(), [](const PlannedTensor& a, const PlannedTensor& b) {
    const std::size_t size_a = dtype_size(a.record.stored_dtype), size_b = dtype_size(b.record.stored_dtype);
    return size_a != size_b ? size_a > size_b : a.record.name < b.record.name;
  });
  // Offsets up to the first encoded tensor are known now; the header
  // reservation prints them exactly (header_writer.hpp).
  std::uint64_t offset = 0;
  for (PlannedTensor& planned : plan) {
    if (planned.codec != nullptr) break;
    planned.record.begin = offset;
    offset += planned.raw_bytes;
    planned.record.end = offset;
  }
  return plan;
}

}  // namespace ckpt::detail

#pragma once

// How a save lays out its tensors before writing: arguments checked, each
// tensor's codec chosen, then ordered as docs/format.md requires. The
// functions are templates only so that programs that never save do not
// compile them (see "Compile time" in docs/architecture.md).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "ckpt/codecs/codec.hpp"
#include "ckpt/codecs/policy.hpp"
#include "ckpt/codecs/registry.hpp"
#include "ckpt/detail/format/chain.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunk_table.hpp"
#include "ckpt/detail/format/chunked.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/order.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// Reads the decoded bytes [begin, end) of an xor-delta tensor's base into
// `out` (docs/format.md, section 8); safe to call from several threads.
using BaseReader = std::function<void(std::uint64_t begin, std::uint64_t end, std::byte* out)>;

// Where a tensor's bytes come from (the caller's memory) and how they are
// stored. `codec` is null for a raw tensor; `base` is set for an xor-delta
// tensor, whose chunks are XORed with the base's before `codec` encodes them.
struct TensorSource {
  const std::byte* data = nullptr;
  std::size_t raw_bytes = 0;
  std::size_t element_size = 1;
  const Codec* codec = nullptr;
  const BaseReader* base = nullptr;
  // A raw tensor whose record's checksums the save computes elsewhere, in
  // the pass that hashes its content (write/content_hashing.hpp).
  bool checksummed_elsewhere = false;
};

// The tensors on their way into the file, in file order: the records the
// header is built from, and their sources (same index).
struct FileLayout {
  std::vector<TensorRecord> records;
  std::vector<TensorSource> sources;
};

// The first 16 bytes of `name` as two big-endian numbers, zero-padded: where
// two names' prefixes differ, they order the names as their bytes do (a
// shorter name is padded with zeros, so it orders before any longer one with
// its bytes up to there, as a prefix does); where equal, only the bytes after
// them can tell.
struct NamePrefix {
  std::uint64_t high = 0;
  std::uint64_t low = 0;

  explicit NamePrefix(std::string_view name) noexcept {
    unsigned char bytes[16] = {};
    std::memcpy(bytes, name.data(), std::min<std::size_t>(name.size(), sizeof bytes));
    for (std::size_t i = 0; i < 8; ++i) {
      high = (high << 8) | bytes[i];
      low = (low << 8) | bytes[8 + i];
    }
  }
};

// The positions of `tensors` sorted by name, stably (within equal names the
// first comes first). Merge sort: it stays n log n where introsort fell back
// to heapsort on the names of 100,000 numbered tensors. The names' prefixes
// decide most comparisons as two integer compares; comparing the strings
// themselves took most of a save's sorting.
template <class = void>
std::vector<std::size_t> positions_by_name(const std::vector<NamedTensor>& tensors) {
  struct Keyed {
    NamePrefix prefix;
    std::size_t position;
  };
  std::vector<Keyed> keyed;
  keyed.reserve(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) keyed.push_back({NamePrefix(tensors[i].name), i});
  std::stable_sort(keyed.begin(), keyed.end(), [&](const Keyed& a, const Keyed& b) {
    if (a.prefix.high != b.prefix.high) return a.prefix.high < b.prefix.high;
    if (a.prefix.low != b.prefix.low) return a.prefix.low < b.prefix.low;
    return tensors[a.position].name < tensors[b.position].name;
  });
  std::vector<std::size_t> by_name(tensors.size());
  for (std::size_t i = 0; i < by_name.size(); ++i) by_name[i] = keyed[i].position;
  return by_name;
}

// The position of the first tensor whose name an earlier tensor has, or
// tensors.size(). Found on positions sorted by name, where a set would
// allocate a node per name.
template <class = void>
std::size_t first_repeated_name(const std::vector<NamedTensor>& tensors, const std::vector<std::size_t>& by_name) {
  std::size_t first = tensors.size();
  for (std::size_t i = 1; i < by_name.size(); ++i) {
    if (tensors[by_name[i]].name == tensors[by_name[i - 1]].name) first = std::min(first, by_name[i]);
  }
  return first;
}

// Returns the tensors' positions sorted by name (positions_by_name), which
// plan_tensors takes: a save sorts its names once.
template <class = void>
std::vector<std::size_t> check_tensor_arguments(const std::string& path, const std::vector<NamedTensor>& tensors) {
  std::vector<std::size_t> by_name = positions_by_name(tensors);
  const std::size_t first_repeat = first_repeated_name(tensors, by_name);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& tensor = tensors[i];
    validate_name(tensor.name, path);
    if (i == first_repeat) {
      throw ArgumentError(ErrorId::argument_duplicate_name, path, tensor.name,
                          "expected unique tensor names, found this name twice");
    }
    const TensorView& view = tensor.view;
    if (!checked_byte_size(view.dtype(), view.shape())) {
      throw ArgumentError(ErrorId::argument_invalid, path, tensor.name,
                          join({"shape ", shape_to_string(view.shape()), " overflows 64 bits"}));
    }
    if (view.data() == nullptr && view.nbytes() != 0) {
      throw ArgumentError(ErrorId::argument_invalid, path, tensor.name,
                          join({"expected data for ", view.nbytes(), " bytes, found a null pointer"}));
    }
  }
  return by_name;
}

// Codecs by spec for one save, so each spec is parsed once. Returns null for
// raw, which a save stores without a codec.
template <class = void>
class CodecCache {
 public:
  CodecCache() = default;
  CodecCache(const CodecCache&) = delete;  // last_ points into codecs_
  CodecCache& operator=(const CodecCache&) = delete;

  const Codec* get(const std::string& spec, const std::string& path, const std::string& tensor) {
    // Most tensors of a save share one spec: the last one is tried first,
    // where a lookup in the map compares strings several times per tensor.
    if (last_ != nullptr && last_->first == spec) return last_->second.codec;
    auto found = codecs_.find(spec);
    if (found == codecs_.end()) {
      std::shared_ptr<const Codec> codec;
      try {
        codec = CodecRegistry::instance().make(spec);
      } catch (const Error& error) {
        error.rethrow_with(path, tensor);
      }
      const Codec* chosen = codec->name() == raw_codec ? nullptr : codec.get();
      found = codecs_.emplace(spec, Entry{std::move(codec), chosen}).first;
    }
    last_ = &*found;
    return found->second.codec;
  }

 private:
  struct Entry {
    std::shared_ptr<const Codec> owner;
    const Codec* codec;  // null for raw
  };
  std::map<std::string, Entry> codecs_;
  const std::pair<const std::string, Entry>* last_ = nullptr;
};

// The codec `tensor` is stored with by `policy`, or null for raw; shuffle+zstd
// for an xor-delta (`delta`) tensor.
template <class = void>
const Codec* chosen_codec(const std::string& path, const NamedTensor& tensor, const CodecPolicy& policy,
                          CodecCache<>& codecs, bool delta = false) {
  // The XOR against a nearby version leaves mostly zero high bytes, which
  // the byte shuffle groups for zstd.
  static const std::string delta_spec = "shuffle+zstd";
  return codecs.get(delta ? delta_spec : policy.spec_for(tensor.name, tensor.view.dtype()), path, tensor.name);
}

// The element size of `tensor` in the data buffer: encoded tensors are U8.
inline std::size_t stored_element_size(const NamedTensor& tensor, const Codec* codec) {
  return codec ? std::size_t(1) : dtype_size(tensor.view.dtype());
}

// Chooses each tensor's codec and orders the tensors as the format requires:
// element size descending, then name, so that every raw tensor sits on a
// multiple of its element size inside the 64-aligned data buffer (encoded
// tensors are stored as U8). Records get their sizes of chunk and block
// tables; checksums, chunk sizes and the offsets after the first encoded
// tensor are filled in while the save streams (write/pipeline.hpp). `codecs`
// owns the codecs the plan points to.
// `bases`: the tensors stored as xor-delta, by name, each with its base.
// `by_name`: the positions of `tensors` sorted by name when the caller has
// them (check_tensor_arguments), or null.
template <class = void>
FileLayout plan_tensors(const std::string& path, const std::vector<NamedTensor>& tensors, const CodecPolicy& policy,
                        std::size_t chunk_bytes, CodecCache<>& codecs,
                        const std::map<std::string, BaseReader>& bases = {},
                        const std::vector<std::size_t>* by_name = nullptr) {
  std::vector<const Codec*> chosen(tensors.size());
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    chosen[i] = chosen_codec(path, tensors[i], policy, codecs, bases.count(tensors[i].name) != 0);
  }
  const auto stored_size = [&](std::size_t i) { return stored_element_size(tensors[i], chosen[i]); };
  // Sorted by name, then stably by stored size: names are unique, so this is
  // the one order of (size, name). A state of one element size is in order
  // by then, and its names were sorted once for the whole save.
  std::vector<std::size_t> order = by_name ? *by_name : positions_by_name(tensors);
  const auto larger = [&](std::size_t a, std::size_t b) { return stored_size(a) > stored_size(b); };
  if (!std::is_sorted(order.begin(), order.end(), larger)) stable_sort_positions(order, PositionLess(larger));
  FileLayout plan;
  plan.records.resize(tensors.size());
  plan.sources.resize(tensors.size());
  std::uint64_t offset = 0;
  bool offsets_known = true;
  for (std::size_t at = 0; at < order.size(); ++at) {
    const TensorView& view = tensors[order[at]].view;
    TensorSource& source = plan.sources[at];
    TensorRecord& record = plan.records[at];
    source = {view.data(), view.nbytes(), dtype_size(view.dtype()), chosen[order[at]]};
    record.name = tensors[order[at]].name;
    record.dtype = record.stored_dtype = view.dtype();
    record.shape = view.shape();  // a raw tensor's stored shape too (TensorRecord::entry_shape)
    record.checksummed = record.block_checksummed = true;
    if (source.codec == nullptr) {
      record.block_bytes = chunk_bytes;
      record.block_xxh3.resize(chunk_count(source.raw_bytes, chunk_bytes));
      // Offsets up to the first encoded tensor are known now; the header
      // reservation prints them exactly (header_writer.hpp).
      if (offsets_known) {
        record.begin = offset;
        offset += source.raw_bytes;
        record.end = offset;
      }
      continue;
    }
    offsets_known = false;
    record.codec = source.codec->name();
    const auto base = bases.find(record.name);
    if (base != bases.end()) {
      source.base = &base->second;
      record.codec = xor_delta_codec;
    }
    record.chunk_bytes = chunk_raw_bytes(chunk_bytes, source.element_size);
    const std::size_t chunks = chunk_count(source.raw_bytes, record.chunk_bytes);
    record.chunk_sizes.resize(chunks);
    record.block_xxh3.resize(chunks);
    record.stored_dtype = DType::U8;
    record.stored_shape = {0};
  }
  return plan;
}

}  // namespace ckpt::detail

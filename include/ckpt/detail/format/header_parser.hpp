#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/blocks.hpp"
#include "ckpt/detail/format/chain.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/chunk_table.hpp"
#include "ckpt/detail/format/compact_json.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/format/name_index.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/order.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"
#include "ckpt/version.hpp"

// Reads and validates a header as docs/format.md, section 7, lists the steps.
namespace ckpt::detail {

struct ParsedHeader {
  std::uint64_t data_start = 0;
  std::vector<TensorRecord> tensors;  // in file order (ascending offsets)
  std::map<std::string, std::string> raw_metadata;
  nlohmann::json user_metadata = nlohmann::json(nlohmann::json::value_t::object);
  int format_version = 0;         // 0: not written by ckpt
  std::uint64_t header_xxh3 = 0;  // ckpt files: the header checksum (section 4)
  // Incremental checkpoints (section 8): the content hash of each stored
  // tensor (when the save recorded them) and the chain of a file with references.
  std::map<std::string, ContentHash> content_hashes;
  std::optional<ChainInfo> chain;
  // `tensors` by name, viewing their names: built once here and kept by the
  // Reader, so a header is sorted by name once. Valid while `tensors` keeps
  // its elements in place (a move of the header keeps them; a copy does not).
  NameIndex<> index;
};

// Validates the header of the `file_size` bytes at `bytes` (the whole file)
// by the reference safetensors rules and, for ckpt files, ckpt's rules. A
// template on Json (always nlohmann::json) only so that programs that open
// no file do not compile it (see "Compile time" in docs/architecture.md).
template <class Json = nlohmann::json>
class HeaderParser {
 public:
  HeaderParser(std::string file, const std::byte* bytes, std::uint64_t file_size)
      : file_(std::move(file)), bytes_(bytes), file_size_(file_size) {}

  // A header as ckpt writes it is read by parse_compact; any other, or any
  // that parse_compact does not take, by parse_general, which names every
  // problem. Both give the same result for a header parse_compact takes
  // (tests/format/header_fast_path_test.cpp compares them).
  ParsedHeader parse() {
    ParsedHeader header;
    if (parse_compact(header)) return header;
    return parse_general();
  }

  // The header read with nlohmann's parser into a DOM, then validated.
  ParsedHeader parse_general() {
    ParsedHeader header;
    header.data_start = read_header_size() + 8;
    const std::string_view text(reinterpret_cast<const char*>(bytes_) + 8, header.data_start - 8);
    check_header_checksum_if_present(header.data_start);

    if (text.empty() || text.front() != '{') {
      fail_json(join({"expected the JSON header to start with '{', found ",
                      (text.empty() ? std::string("an empty header") : join({"'", excerpt(text, 1), "'"}))}));
    }
    std::string problem;
    std::optional<Json> root = parse_strict_json(text, max_header_depth, max_header_array, problem);
    if (!root) fail_json(problem);  // text starting with '{' that parses is an object

    try {
      read_metadata(*root, header);
      check_version(header);  // before the checksum: a newer version may checksum differently
    } catch (const FormatError& error) {
      if (checksum_ok_ == false && error.id() != ErrorId::format_newer_version) fail_header_checksum();
      throw;
    }
    // Any one of ckpt's marks makes a file a ckpt file, so damage to some of
    // them cannot pass a ckpt file off as an unchecksummed foreign one.
    const bool ckpt_file =
        checksum_ok_.has_value() || std::any_of(header.raw_metadata.begin(), header.raw_metadata.end(),
                                                [](const auto& entry) { return entry.first.rfind("ckpt.", 0) == 0; });
    if (ckpt_file) {
      require_header_checksum();
      if (header.format_version == 0) {
        fail(ErrorId::format_metadata, "", "expected the __metadata__ key ckpt.format_version, found none");
      }
    }

    header.tensors.reserve(root->size());
    for (auto& [name, entry] : root->items()) {
      if (name != metadata_key) header.tensors.push_back(read_entry(name, entry));
    }
    check_offsets(header);
    header.index = NameIndex<>(header.tensors);
    if (ckpt_file) read_ckpt_metadata(header);
    return header;
  }

  // The header of a ckpt file read straight into records, without a DOM: a
  // header of 100,000 tensors opens in tens of milliseconds instead of
  // seconds. Takes only a header whose checksum holds, in the compact form
  // ckpt writes (compact_json.hpp), with ckpt.tensors in the order of the
  // data; it runs every check parse_general runs and gives up (false, and
  // `header`, which must be a fresh one, to be discarded) at anything else,
  // leaving parse_general to accept the header or name the problem. It never
  // throws what parse_general would not throw first. (Not a
  // std::optional<ParsedHeader>: that class costs every program that
  // includes ckpt.hpp its compile time.)
  bool parse_compact(ParsedHeader& header) {
    header.data_start = read_header_size() + 8;
    check_header_checksum_if_present(header.data_start);
    if (checksum_ok_ != true) return false;
    try {
      return read_compact(header);
    } catch (const Error&) {
      return false;  // a check shared with parse_general failed: it will name the problem
    }
  }

 private:
  template <class ErrorClass = FormatError>
  [[noreturn]] void fail(ErrorId id, const std::string& tensor, const std::string& what) const {
    throw ErrorClass(id, file_, tensor, what);
  }

  // Corruption inside a checksummed header is an integrity error even when
  // it broke the JSON, so users learn the file was damaged, not mis-written.
  [[noreturn]] void fail_json(const std::string& what) const {
    if (checksum_ok_ == false) fail_header_checksum();
    fail(ErrorId::format_header_json, "", what);
  }

  // Members rather than lambdas because only functions can be [[noreturn]]:
  // the checks after a failed one dereference optionals that are then empty.
  [[noreturn]] void fail_entry(const std::string& name, const Json& entry, const std::string& expected) const {
    fail(ErrorId::format_tensor_entry, name, join({"expected ", expected, ", found ", excerpt(entry.dump())}));
  }

  [[noreturn]] void fail_tensor_info(const std::string& name, const Json& info, const std::string& expected) const {
    fail(ErrorId::format_metadata, name,
         join({"expected ", expected, " in ckpt.tensors, found ", excerpt(info.dump())}));
  }

  [[noreturn]] void fail_header_checksum() const {
    fail<IntegrityError>(
        ErrorId::integrity_header_checksum, "",
        join({"header checksum mismatch (the header changed after it was written): ", checksum_mismatch_}));
  }

  std::uint64_t read_header_size() const {
    if (file_size_ < 8) {
      fail(ErrorId::format_truncated, "", join({"expected at least 8 bytes (the header size), found ", file_size_}));
    }
    const std::uint64_t size = load_le64(bytes_);
    if (size > max_header_bytes) {
      fail(ErrorId::format_header_size, "",
           join({"expected a header size of at most ", max_header_bytes, " bytes, found ", size}));
    }
    if (size > file_size_ - 8) {
      fail(ErrorId::format_truncated, "",
           join({"expected a header of ", size, " bytes after the 8-byte size, found a file of ", file_size_,
                 " bytes"}));
    }
    return size;
  }

  // Sets checksum_ok_ when the header starts the way ckpt writes it.
  void check_header_checksum_if_present(std::uint64_t data_start) {
    const std::uint64_t after = checksum_value_offset + checksum_hex_digits;
    if (data_start < after + 1) return;
    const std::string_view start(reinterpret_cast<const char*>(bytes_) + 8, checksum_prefix.size());
    if (start != checksum_prefix) return;
    const std::string_view stored(reinterpret_cast<const char*>(bytes_) + checksum_value_offset, checksum_hex_digits);
    const std::uint64_t computed = header_checksum(bytes_, data_start);
    checksum_ok_ = checksum_from_hex(stored) == computed;
    checksum_mismatch_ = join({"expected xxh3 '", excerpt(stored), "', found ", checksum_to_hex(computed)});
  }

  void require_header_checksum() const {
    if (!checksum_ok_) {
      fail(ErrorId::format_metadata, "",
           join({"expected the header to begin with ", checksum_prefix,
                 " (a ckpt file's header checksum), found another start"}));
    }
    if (!*checksum_ok_) fail_header_checksum();
  }

  void read_metadata(const Json& root, ParsedHeader& header) const {
    const auto found = root.find(metadata_key);
    if (found == root.end()) return;
    if (!found->is_object()) {
      fail(ErrorId::format_metadata, "",
           join({"expected __metadata__ to be an object of strings, found ", found->type_name()}));
    }
    for (const auto& item : found->items()) {
      // Named rather than bound: g++ takes structured bindings in a template for dependent.
      const std::string& key = item.key();
      const Json& value = item.value();
      if (!value.is_string()) {
        fail(ErrorId::format_metadata, "",
             join({"expected __metadata__ value of '", excerpt(key), "' to be a string, found ", value.type_name()}));
      }
      header.raw_metadata.emplace(key, value.template get<std::string>());
    }
  }

  void check_version(ParsedHeader& header) const {
    const auto found = header.raw_metadata.find(keys::format_version);
    if (found == header.raw_metadata.end()) return;
    const std::string& text = found->second;
    const bool digits = !text.empty() && text.size() <= 9 && text.front() != '0' &&
                        std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (!digits) {
      fail(ErrorId::format_metadata, "",
           join({"expected ckpt.format_version to be a positive integer, found '", excerpt(text), "'"}));
    }
    header.format_version = std::stoi(text);
    if (header.format_version > newest_readable_format_version) {
      fail(ErrorId::format_newer_version, "",
           join({"written by a newer ckpt: format version ", text, ", this build reads versions up to ",
                 newest_readable_format_version, "; upgrade ckpt to read it"}));
    }
  }

  TensorRecord read_entry(const std::string& name, const Json& entry) const {
    if (auto problem = tensor_name_problem(name)) fail(ErrorId::format_tensor_entry, printable_name(name), *problem);
    if (!entry.is_object() || entry.size() != 3 || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets")) {
      fail_entry(name, entry, "an object with exactly the keys dtype, shape and data_offsets");
    }
    TensorRecord record;
    record.name = name;
    const Json& dtype = member(entry, "dtype");
    const auto parsed_dtype = dtype.is_string() ? dtype_from_name(dtype.template get<std::string>()) : std::nullopt;
    if (!parsed_dtype) fail_entry(name, entry, join({"a dtype among ", known_dtype_names()}));
    const auto shape = as_shape(member(entry, "shape"));
    if (!shape) fail_entry(name, entry, "a shape of non-negative integers");
    // Checked, then read as plain integers: optionals built by a conditional
    // expression made g++ 12 see a path reading an empty one.
    const Json& offsets = member(entry, "data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned()) {
      fail_entry(name, entry, "data_offsets [BEGIN, END] of two non-negative integers");
    }
    const auto begin = offsets[0].template get<std::uint64_t>();
    const auto end = offsets[1].template get<std::uint64_t>();
    if (begin > end) {
      fail(ErrorId::format_offsets, name, join({"expected data_offsets BEGIN <= END, found [", begin, ", ", end, "]"}));
    }
    const auto size = checked_byte_size(*parsed_dtype, *shape);
    if (!size) fail(ErrorId::format_byte_size, name, join({"shape ", shape_to_string(*shape), " overflows 64 bits"}));
    if (*size != end - begin) {
      fail(ErrorId::format_byte_size, name,
           join({"expected ", *size, " bytes for ", dtype_name(*parsed_dtype), " ", shape_to_string(*shape),
                 ", found data_offsets spanning ", end - begin}));
    }
    record.dtype = record.stored_dtype = *parsed_dtype;
    record.shape = record.stored_shape = *shape;
    record.begin = begin;
    record.end = end;
    return record;
  }

  // Sorted by offset, tensors must tile the data buffer exactly.
  void check_offsets(ParsedHeader& header) const {
    const auto file_order = [](const TensorRecord& a, const TensorRecord& b) {
      // Field by field, not through std::tie (see PieceGeometry's operator<).
      if (a.begin != b.begin) return a.begin < b.begin;
      if (a.end != b.end) return a.end < b.end;
      return a.name < b.name;
    };
    // Headers ckpt writes list the tensors in file order already.
    if (!std::is_sorted(header.tensors.begin(), header.tensors.end(), file_order)) {
      stable_sort_items(header.tensors, file_order);
    }
    const std::uint64_t data_size = file_size_ - header.data_start;
    std::uint64_t expected = 0;
    const TensorRecord* previous = nullptr;
    for (const TensorRecord& record : header.tensors) {
      if (record.begin != expected) {
        fail(ErrorId::format_offsets, record.name,
             join({"expected data to begin at offset ", expected,
                   (previous ? join({" where tensor '", excerpt(previous->name), "' ends"})
                             : std::string(" (the start)")),
                   ", found ", record.begin, (record.begin < expected ? " (overlapping)" : " (a gap)")}));
      }
      if (record.end > data_size) {
        fail(ErrorId::format_truncated, record.name,
             join({"expected the data buffer to hold offset ", record.end, ", found ", data_size,
                   " bytes of data (file truncated?)"}));
      }
      expected = record.end;
      previous = &record;
    }
    if (expected != data_size) {
      fail(ErrorId::format_trailing_bytes, "",
           join({"expected the file to end at byte ", header.data_start + expected, ", found ", data_size - expected,
                 " trailing bytes"}));
    }
  }

  void read_user_metadata(ParsedHeader& header) const {
    if (auto user_metadata = parse_metadata_json(header, keys::user_metadata, max_metadata_depth)) {
      if (!user_metadata->is_object()) {
        fail(ErrorId::format_metadata, "",
             join({"expected ckpt.metadata to hold a JSON object, found ", user_metadata->type_name()}));
      }
      header.user_metadata = std::move(*user_metadata);
    }
  }

  // An array element takes 16 bytes parsed and a vector may double its
  // capacity: this bound on the arrays of ckpt.tensors keeps every
  // allocation below the file's size.
  std::size_t max_metadata_elements() const { return std::max<std::uint64_t>(max_header_array, file_size_ / 32); }

  void read_ckpt_metadata(ParsedHeader& header) const {
    read_user_metadata(header);
    const std::optional<Json> infos = parse_metadata_json(header, keys::tensors, max_header_depth);
    if (!infos) fail(ErrorId::format_metadata, "", "expected the __metadata__ key ckpt.tensors, found none");
    if (!infos->is_object() || infos->size() != header.tensors.size()) {
      fail(ErrorId::format_metadata, "",
           join({"expected ckpt.tensors to describe the ", header.tensors.size(), " tensors of the header, found ",
                 excerpt(infos->dump())}));
    }
    for (TensorRecord& record : header.tensors) {
      const auto info = infos->find(record.name);
      if (info == infos->end())
        fail(ErrorId::format_metadata, record.name, "expected an entry in ckpt.tensors, found none");
      read_tensor_info(*info, record, header.format_version >= first_block_format_version);
    }
    header.header_xxh3 = checksum_from_hex(header.raw_metadata.at(keys::header_checksum)).value_or(0);
    read_chain_metadata(header);
  }

  // ckpt.xxh128 and ckpt.chain (section 8). A chain in a file of an earlier
  // version is refused: that version's readers ignore it.
  void read_chain_metadata(ParsedHeader& header) const {
    if (auto hashes = parse_metadata_json(header, keys::content_hashes, max_header_depth)) {
      header.content_hashes = parse_content_hashes(*hashes, header.tensors, file_);
    }
    const std::optional<Json> chain = parse_metadata_json(header, keys::chain, max_header_depth);
    if (!chain) {
      for (const TensorRecord& record : header.tensors) {
        if (record.codec == xor_delta_codec) fail_missing_delta_base(record.name);
      }
      return;
    }
    if (header.format_version < first_chain_format_version) {
      fail(ErrorId::format_metadata, "",
           join({"expected no ckpt.chain in a file of format version ", header.format_version,
                 " (references need version ", first_chain_format_version, "), found one"}));
    }
    header.chain = ChainParser<Json>(file_).parse(*chain);
    std::set<std::string_view> stored, deltas, delta_bases;
    for (const TensorRecord& record : header.tensors) {
      stored.insert(record.name);
      if (record.codec == xor_delta_codec) deltas.insert(record.name);
    }
    for (const DeltaBase& delta : header.chain->deltas) {
      if (deltas.count(delta.name) == 0) {
        fail(ErrorId::format_metadata, delta.name,
             "expected a delta base in ckpt.chain only for a stored tensor of codec xor-delta, found one for another");
      }
      delta_bases.insert(delta.name);
    }
    for (std::string_view name : deltas) {
      if (delta_bases.count(name) == 0) fail_missing_delta_base(std::string(name));
    }
    for (const TensorReference& reference : header.chain->references) {
      if (stored.count(reference.name) != 0) {
        fail(ErrorId::format_metadata, reference.name,
             "expected a tensor either stored or referenced, found it both in the header and in ckpt.chain");
      }
    }
  }

  // The JSON held in the string value of __metadata__[key]; nullopt when absent.
  std::optional<Json> parse_metadata_json(const ParsedHeader& header, const char* key, std::size_t max_depth) const {
    const auto found = header.raw_metadata.find(key);
    if (found == header.raw_metadata.end()) return std::nullopt;
    std::string problem;
    std::optional<Json> parsed = parse_strict_json<Json>(found->second, max_depth, max_metadata_elements(), problem);
    if (!parsed) fail(ErrorId::format_metadata, "", join({key, ": ", problem}));
    return parsed;
  }

  [[noreturn]] void fail_missing_delta_base(const std::string& name) const {
    fail(ErrorId::format_metadata, name, "expected a delta base in ckpt.chain for this xor-delta tensor, found none");
  }

  // `blocks`: the file's version defines block checksums (docs/format.md,
  // section 4); an earlier version's entry must not carry them.
  void read_tensor_info(const Json& info, TensorRecord& record, bool blocks) const {
    const auto codec = info.is_object() ? info.find("codec") : info.end();
    if (codec == info.end() || !codec->is_string() || codec->empty() ||
        codec->template get<std::string>().find(':') != std::string::npos) {
      fail_tensor_info(record.name, info, "an object with a codec name (without ':')");
    }
    record.codec = codec->template get<std::string>();
    const auto stored_xxh3 = checksum_of(info, "xxh3");
    if (!stored_xxh3) fail_tensor_info(record.name, info, join({"an xxh3 checksum", hex_digits_text()}));
    record.stored_xxh3 = *stored_xxh3;
    record.checksummed = true;
    const char* version_text = blocks ? " (format version 2)" : " (format version 1)";
    if (!record.encoded()) {
      if (info.size() != (blocks ? 4u : 2u)) {
        fail_tensor_info(
            record.name, info,
            join({blocks ? "exactly the keys codec, xxh3, block_bytes and blocks" : "exactly the keys codec and xxh3",
                  " for a raw tensor", version_text}));
      }
      if (blocks) read_blocks(info, record);
      return;
    }
    if (info.size() != (blocks ? 8u : 7u)) {
      fail_tensor_info(record.name, info,
                       join({"exactly the keys codec, xxh3, dtype, shape, chunk_bytes, chunks, raw_xxh3",
                             blocks ? ", blocks" : "", version_text}));
    }
    if (record.stored_dtype != DType::U8 || record.stored_shape.size() != 1) {
      fail_tensor_info(record.name, info, "an encoded tensor stored as U8 [bytes]");
    }
    const Json& dtype = member(info, "dtype");
    const auto parsed_dtype = dtype.is_string() ? dtype_from_name(dtype.template get<std::string>()) : std::nullopt;
    const auto shape = as_shape(member(info, "shape"));
    if (!parsed_dtype || !shape)
      fail_tensor_info(record.name, info, join({"a dtype among ", known_dtype_names(), " and a shape"}));
    // value_or, not *: g++ 12 sees a path reading the optional empty otherwise.
    const DType logical_dtype = parsed_dtype.value_or(DType::U8);
    const auto raw_bytes = checked_byte_size(logical_dtype, *shape);
    if (!raw_bytes) fail_tensor_info(record.name, info, "a shape whose byte size fits 64 bits");
    const auto chunk_bytes = as_u64(member(info, "chunk_bytes"));
    const auto chunks = as_shape(member(info, "chunks"));
    if (!chunk_bytes || !chunks) {
      fail_tensor_info(record.name, info, "chunk_bytes, an integer, and chunks, an array of stored sizes");
    }
    check_chunk_table(*raw_bytes, dtype_size(logical_dtype), *chunk_bytes, *chunks, record.stored_bytes(), file_,
                      record.name);
    const auto raw_xxh3 = checksum_of(info, "raw_xxh3");
    if (!raw_xxh3) fail_tensor_info(record.name, info, join({"a raw_xxh3 checksum", hex_digits_text()}));
    record.dtype = logical_dtype;
    record.shape = *shape;
    record.chunk_bytes = *chunk_bytes;
    record.chunk_sizes = *chunks;
    record.raw_xxh3 = *raw_xxh3;
    if (blocks) read_blocks(info, record);
  }

  // `block_bytes` (raw tensors) and `blocks` of a format version 2 entry whose
  // other members were read: as many checksums as the tensor has blocks.
  void read_blocks(const Json& info, TensorRecord& record) const {
    if (!record.encoded()) {
      const auto found = info.find("block_bytes");
      const auto block_bytes = found == info.end() ? std::nullopt : as_u64(*found);
      if (!block_bytes || *block_bytes == 0 || *block_bytes > max_block_bytes) {
        fail_tensor_info(record.name, info, join({"block_bytes, an integer from 1 to ", max_block_bytes, ","}));
      }
      record.block_bytes = *block_bytes;
    } else {
      set_block_starts(record);
    }
    const std::uint64_t expected = expected_block_count(record);
    const auto blocks = info.find("blocks");
    if (blocks == info.end() || !blocks->is_array()) {
      fail_blocks(record, blocks == info.end() ? std::string("no blocks member") : excerpt(blocks->dump()));
    }
    if (blocks->size() != expected) fail_blocks(record, std::to_string(blocks->size()));
    record.block_xxh3.reserve(blocks->size());
    for (const Json& block : *blocks) {
      const auto value =
          block.is_string() ? checksum_from_hex(block.template get_ref<const std::string&>()) : std::nullopt;
      if (!value) fail_blocks(record, join({"block ", record.block_xxh3.size(), " ", excerpt(block.dump())}));
      record.block_xxh3.push_back(*value);
    }
    record.block_checksummed = true;
  }

  // An encoded tensor's blocks are its chunks.
  static void set_block_starts(TensorRecord& record) {
    record.block_starts.assign(record.chunk_sizes.size() + 1, 0);
    for (std::size_t i = 0; i < record.chunk_sizes.size(); ++i) {
      record.block_starts[i + 1] = record.block_starts[i] + record.chunk_sizes[i];
    }
  }

  // The shortest tensor entry of a compact header: "x":{"dtype":"U8",
  // "shape":[],"data_offsets":[0,0]} and the comma before the next one.
  static constexpr std::size_t min_compact_entry_bytes = 51;

  // The compact reading (parse_compact): each function returns false where
  // the header leaves the compact form or fails a check, and throws only
  // what a check shared with parse_general throws.
  bool read_compact(ParsedHeader& header) {
    const std::string_view text(reinterpret_cast<const char*>(bytes_) + 8, header.data_start - 8);
    CompactJson<> json(text);
    bool metadata_seen = false;
    if (!json.eat('{')) return false;
    if (!json.eat('}')) {
      do {
        std::string_view key;
        if (!json.key(key)) return false;
        if (key == metadata_key) {
          if (metadata_seen || !read_compact_metadata(json, header)) return false;
          metadata_seen = true;
          // The tensors' entries follow, each at least min_compact_entry_bytes
          // long: room for all of them, so that 100,000 records are not
          // moved again and again as the vector grows.
          header.tensors.reserve((text.size() - json.position()) / min_compact_entry_bytes + 1);
        } else {
          header.tensors.emplace_back();
          if (!read_compact_entry(json, key, header.tensors.back())) return false;
        }
      } while (json.eat(','));
      if (!json.eat('}')) return false;
    }
    if (!json.spaces_to_end()) return false;
    check_version(header);
    if (header.format_version == 0) return false;
    check_offsets(header);
    // Safetensors keys are unique; nlohmann's DOM finds duplicates. The index
    // is built after check_offsets, which may reorder the records.
    header.index = NameIndex<>(header.tensors);
    if (header.index.has_duplicates()) return false;
    read_user_metadata(header);
    if (!read_compact_tensor_infos(header)) return false;
    header.header_xxh3 = checksum_from_hex(header.raw_metadata.at(keys::header_checksum)).value_or(0);
    read_chain_metadata(header);  // the incremental keys, read as parse_general reads them
    return true;
  }

  // __metadata__: an object of strings.
  bool read_compact_metadata(CompactJson<>& json, ParsedHeader& header) const {
    if (!json.eat('{')) return false;
    if (json.eat('}')) return true;
    do {
      std::string_view key;
      std::string value;
      if (!json.key(key) || !json.escaped_string(value)) return false;
      if (!header.raw_metadata.emplace(std::string(key), std::move(value)).second) return false;
    } while (json.eat(','));
    return json.eat('}');
  }

  // A tensor's entry, checked as read_entry checks it.
  bool read_compact_entry(CompactJson<>& json, std::string_view name, TensorRecord& record) {
    if (tensor_name_problem(name)) return false;
    std::optional<DType> dtype;
    bool shape_seen = false, offsets_seen = false;
    if (!json.eat('{')) return false;
    do {
      std::string_view member, dtype_text;
      if (!json.key(member)) return false;
      if (member == "dtype" && !dtype) {
        if (!json.string(dtype_text) || !(dtype = compact_dtype(dtype_text))) return false;
      } else if (member == "shape" && !shape_seen) {
        if (!json.numbers(record.shape, max_header_array)) return false;
        shape_seen = true;
      } else if (member == "data_offsets" && !offsets_seen) {
        if (!json.numbers(offsets_, 2) || offsets_.size() != 2) return false;
        offsets_seen = true;
      } else {
        return false;
      }
    } while (json.eat(','));
    if (!json.eat('}') || !dtype || !shape_seen || !offsets_seen || offsets_[0] > offsets_[1]) return false;
    const auto size = checked_byte_size(*dtype, record.shape);
    if (!size || *size != offsets_[1] - offsets_[0]) return false;
    record.name = std::string(name);
    record.dtype = record.stored_dtype = *dtype;
    record.stored_shape = record.shape;
    record.begin = offsets_[0];
    record.end = offsets_[1];
    return true;
  }

  // ckpt.tensors, its entries in the order of the data as ckpt writes them.
  bool read_compact_tensor_infos(ParsedHeader& header) {
    const auto found = header.raw_metadata.find(keys::tensors);
    if (found == header.raw_metadata.end()) return false;
    const bool blocks = header.format_version >= first_block_format_version;
    CompactJson<> json(found->second);
    std::size_t next = 0;
    if (!json.eat('{')) return false;
    if (!json.eat('}')) {
      do {
        std::string_view name;
        if (!json.key(name) || next == header.tensors.size() || name != header.tensors[next].name) return false;
        if (!read_compact_tensor_info(json, header.tensors[next++], blocks)) return false;
      } while (json.eat(','));
      if (!json.eat('}')) return false;
    }
    return json.at_end() && next == header.tensors.size();
  }

  // A tensor's entry in ckpt.tensors, checked as read_tensor_info and
  // read_blocks check it: exactly the members its codec and format version
  // call for.
  bool read_compact_tensor_info(CompactJson<>& json, TensorRecord& record, bool blocks) {
    enum Member : unsigned {
      codec = 1,
      xxh3 = 2,
      dtype = 4,
      shape = 8,
      chunk_bytes = 16,
      chunks = 32,
      raw_xxh3 = 64,
      block_bytes = 128,
      block_list = 256
    };
    const std::size_t max_elements = max_metadata_elements();
    unsigned seen = 0;
    std::string_view codec_text, dtype_text;
    std::uint64_t chunk_bytes_value = 0, block_bytes_value = 0;
    Shape logical_shape;
    if (!json.eat('{')) return false;
    do {
      std::string_view member;
      if (!json.key(member)) return false;
      Member which;
      bool read = false;
      if (member == "codec") {
        which = codec, read = json.string(codec_text);
      } else if (member == "xxh3") {
        which = xxh3, read = compact_checksum(json, record.stored_xxh3);
      } else if (member == "dtype") {
        which = dtype, read = json.string(dtype_text);
      } else if (member == "shape") {
        which = shape, read = json.numbers(logical_shape, max_elements);
      } else if (member == "chunk_bytes") {
        which = chunk_bytes, read = json.number(chunk_bytes_value);
      } else if (member == "chunks") {
        which = chunks, read = json.numbers(record.chunk_sizes, max_elements);
      } else if (member == "raw_xxh3") {
        which = raw_xxh3, read = compact_checksum(json, record.raw_xxh3);
      } else if (member == "block_bytes") {
        which = block_bytes, read = json.number(block_bytes_value);
      } else if (member == "blocks") {
        which = block_list, read = json.strings(block_hex_, max_elements);
      } else {
        return false;
      }
      if (!read || (seen & which) != 0) return false;
      seen |= which;
    } while (json.eat(','));
    if (!json.eat('}') || codec_text.empty() || codec_text.find(':') != std::string_view::npos) return false;
    record.codec = std::string(codec_text);
    record.checksummed = true;
    const unsigned block_members = !blocks ? 0u : record.encoded() ? unsigned(block_list) : block_bytes | block_list;
    if (!record.encoded()) {
      if (seen != (codec | xxh3 | block_members)) return false;
      record.block_bytes = block_bytes_value;
      if (blocks && (block_bytes_value == 0 || block_bytes_value > max_block_bytes)) return false;
    } else {
      if (seen != (codec | xxh3 | dtype | shape | chunk_bytes | chunks | raw_xxh3 | block_members)) return false;
      if (record.stored_dtype != DType::U8 || record.stored_shape.size() != 1) return false;
      const std::optional<DType> logical_dtype = dtype_from_name(dtype_text);
      const auto raw_bytes = logical_dtype ? checked_byte_size(*logical_dtype, logical_shape) : std::nullopt;
      if (!raw_bytes || chunk_table_problem(*raw_bytes, dtype_size(*logical_dtype), chunk_bytes_value,
                                            record.chunk_sizes, record.stored_bytes())) {
        return false;
      }
      record.dtype = *logical_dtype;
      record.shape = std::move(logical_shape);
      record.chunk_bytes = chunk_bytes_value;
      if (blocks) set_block_starts(record);
    }
    if (!blocks) return true;
    if (block_hex_.size() != expected_block_count(record)) return false;
    record.block_xxh3.resize(block_hex_.size());
    for (std::size_t i = 0; i < block_hex_.size(); ++i) {
      const auto value = checksum_from_hex(block_hex_[i]);
      if (!value) return false;
      record.block_xxh3[i] = *value;
    }
    record.block_checksummed = true;
    return true;
  }

  // dtype_from_name, remembering the last name: neighbouring tensors mostly
  // share a dtype, and the search through every dtype's name cost more than
  // the rest of reading one.
  std::optional<DType> compact_dtype(std::string_view text) {
    if (text != last_dtype_text_) {
      last_dtype_ = dtype_from_name(text);
      last_dtype_text_ = text;
    }
    return last_dtype_;
  }

  static bool compact_checksum(CompactJson<>& json, std::uint64_t& value) {
    std::string_view text;
    const auto parsed = json.string(text) ? checksum_from_hex(text) : std::nullopt;
    if (parsed) value = *parsed;
    return parsed.has_value();
  }

  // `blocks` of `record` are not what section 4 gives it: `found` says what is.
  [[noreturn]] void fail_blocks(const TensorRecord& record, const std::string& found) const {
    fail(ErrorId::format_metadata, record.name,
         join({"expected ", expected_block_count(record), " block checksums (",
               (record.encoded() ? "one per chunk" : join({"one per ", record.block_bytes, " stored bytes"})), ", each",
               hex_digits_text(), "), found ", found}));
  }

  static std::string hex_digits_text() { return join({" of ", checksum_hex_digits, " lowercase hex digits"}); }

  static std::optional<std::uint64_t> checksum_of(const Json& info, const char* key) {
    const auto found = info.find(key);
    if (found == info.end() || !found->is_string()) return std::nullopt;
    return checksum_from_hex(found->template get<std::string>());
  }

  std::string file_;
  const std::byte* bytes_;
  std::uint64_t file_size_;
  std::optional<bool> checksum_ok_;  // empty: the header carries no checksum
  std::string checksum_mismatch_;
  // Reused by the compact reading, which would otherwise allocate per tensor.
  std::vector<std::uint64_t> offsets_;
  std::vector<std::string_view> block_hex_;
  std::string_view last_dtype_text_;  // views the header
  std::optional<DType> last_dtype_;   // dtype_from_name(last_dtype_text_)
};

}  // namespace ckpt::detail

#pragma once

// model.safetensors.index.json, as docs/distributed.md specifies it: Hugging
// Face's shape ({"metadata": {"total_size": N}, "weight_map": {name: file}})
// with ckpt's records inside "metadata": every tensor's dtype, global shape
// and the pieces it is stored in, each file's size and header checksum, the
// step, the world size, the format version and the user's metadata.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/distributed/geometry.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/content_hash.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/format/strict_json.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/dtype.hpp"
#include "ckpt/error.hpp"
#include "ckpt/names.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// The newest index layout this build reads. A checkpoint with references
// to another (an incremental one) is written as version 2, so that older
// readers refuse it instead of missing its referenced pieces; any other as
// version 1.
inline constexpr std::uint64_t distributed_format_version = 2;
inline constexpr std::uint64_t first_chain_index_version = 2;

// The codec an index records for a piece its file references (its bytes are
// in a file of an earlier checkpoint, docs/distributed.md "Incremental").
inline constexpr const char* reference_codec = "reference";

namespace index_keys {
inline constexpr const char* metadata = "metadata";
inline constexpr const char* weight_map = "weight_map";
inline constexpr const char* total_size = "total_size";
inline constexpr const char* format_version = "ckpt.format_version";
inline constexpr const char* step = "ckpt.step";
inline constexpr const char* world_size = "ckpt.world_size";
inline constexpr const char* files = "ckpt.files";
inline constexpr const char* tensors = "ckpt.tensors";
inline constexpr const char* user_metadata = "ckpt.metadata";
inline constexpr const char* chain = "ckpt.chain";
}  // namespace index_keys

// One piece of a tensor, stored whole as the tensor `stored_name` of `file`.
struct IndexPiece {
  PieceGeometry geometry;
  std::string file;
  std::string stored_name;
  std::string codec{raw_codec};
  std::uint64_t xxh3 = 0;                 // of the stored bytes, as the file records it
  std::optional<std::uint64_t> raw_xxh3;  // of the decoded bytes, for encoded pieces
  // The content hash of a referenced piece (codec reference_codec), whose
  // xxh3 is then 0: the file records where its bytes are.
  std::optional<ContentHash> xxh128;

  bool referenced() const { return codec == reference_codec; }
};

struct IndexTensor {
  DType dtype = DType::U8;
  Shape shape;
  std::vector<IndexPiece> pieces;  // ordered by first element; they tile the tensor
};

struct IndexFile {
  std::uint64_t bytes = 0;
  std::uint64_t header_xxh3 = 0;  // the file's ckpt.header_xxh3: it pins every byte of the file
};

// An incremental checkpoint: the directory it was saved against and those
// its files read referenced bytes from, each relative to its own directory
// ("../step-00000100"), and the chain policy's figures (docs/format.md,
// section 8, for the whole checkpoint).
struct IndexChain {
  std::string parent;
  std::uint64_t depth = 1;
  std::uint64_t chain_bytes = 0;
  std::vector<std::string> sources;  // sorted
};

struct CheckpointIndex {
  std::uint64_t format_version = distributed_format_version;
  std::uint64_t step = 0;
  std::uint64_t world_size = 0;
  std::uint64_t total_size = 0;  // bytes of every stored tensor, as safetensors readers count them
  std::map<std::string, IndexFile> files;
  std::map<std::string, IndexTensor> tensors;
  nlohmann::json metadata = nlohmann::json(nlohmann::json::value_t::object);  // the user's, from rank 0
  std::optional<IndexChain> chain;
};

template <class = void>
std::string index_to_json(const CheckpointIndex& index) {
  using nlohmann::json;
  json files = json::object();
  for (const auto& [name, file] : index.files) {
    files[name] = {{"bytes", file.bytes}, {"header_xxh3", checksum_to_hex(file.header_xxh3)}};
  }
  json tensors = json::object();
  json weight_map = json::object();
  for (const auto& [name, tensor] : index.tensors) {
    json pieces = json::array();
    for (const IndexPiece& piece : tensor.pieces) {
      json entry = json::object();
      if (piece.geometry.kind == PieceGeometry::Kind::flat) {
        entry["flat"] = {piece.geometry.offsets[0], piece.geometry.offsets[0] + piece.geometry.extents[0]};
      } else {
        entry["offsets"] = piece.geometry.offsets;
        entry["extents"] = piece.geometry.extents;
      }
      entry["file"] = piece.file;
      entry["name"] = piece.stored_name;
      entry["codec"] = piece.codec;
      if (piece.referenced()) {
        entry["xxh128"] = content_hash_to_hex(piece.xxh128.value_or(ContentHash{}));
      } else {
        entry["xxh3"] = checksum_to_hex(piece.xxh3);
        // Only the pieces a file stores: a Hugging Face loader finds each in its file.
        weight_map[piece.stored_name] = piece.file;
      }
      if (piece.raw_xxh3) entry["raw_xxh3"] = checksum_to_hex(*piece.raw_xxh3);
      pieces.push_back(std::move(entry));
    }
    tensors[name] = {{"dtype", dtype_name(tensor.dtype)}, {"shape", tensor.shape}, {"pieces", std::move(pieces)}};
  }
  json metadata = {{index_keys::total_size, index.total_size},
                   {index_keys::format_version, index.chain ? first_chain_index_version : std::uint64_t(1)},
                   {index_keys::step, index.step},
                   {index_keys::world_size, index.world_size},
                   {index_keys::files, std::move(files)},
                   {index_keys::tensors, std::move(tensors)},
                   {index_keys::user_metadata, index.metadata}};
  if (index.chain) {
    metadata[index_keys::chain] = {{"parent", index.chain->parent},
                                   {"depth", index.chain->depth},
                                   {"chain_bytes", index.chain->chain_bytes},
                                   {"sources", index.chain->sources}};
  }
  return join({json{{index_keys::metadata, metadata}, {index_keys::weight_map, std::move(weight_map)}}.dump(1), "\n"});
}

// Reads an index strictly: a hand-edited or damaged index is refused with a
// FormatError naming `path` (and the tensor), never half-trusted. A template only so that programs that read no
// distributed index do not compile it (docs/architecture.md, "Compile time").
template <class = void>
class IndexParser {
 public:
  explicit IndexParser(std::string path) : path_(std::move(path)) {}

  CheckpointIndex parse(std::string_view text) const {
    std::string problem;
    // Nesting: the index's own three levels around the user's metadata.
    const std::optional<nlohmann::json> root = parse_strict_json(
        text, max_metadata_depth + 4, std::max<std::size_t>(max_header_array, text.size() / 4), problem);
    if (!root)
      throw FormatError(ErrorId::format_header_json, path_, "", join({"expected the index to be JSON: ", problem}));
    if (!root->is_object()) fail("", join({"expected a JSON object, found ", root->type_name()}));
    const nlohmann::json& metadata = object_member(*root, index_keys::metadata, "");
    CheckpointIndex index;
    const nlohmann::json& version = member(metadata, index_keys::format_version);
    if (version.is_null()) {
      fail("",
           join({"expected metadata.", index_keys::format_version,
                 ", found none: not written by ckpt (a Hugging Face index alone does not say how tensors are split)"}));
    }
    index.format_version = number(metadata, index_keys::format_version, "");
    if (index.format_version == 0 || index.format_version > distributed_format_version) {
      throw FormatError(
          ErrorId::format_newer_version, path_, "",
          join({"expected an index of format version ", distributed_format_version, " or older, found version ",
                index.format_version, ": written by a newer ckpt; upgrade ckpt to read it"}));
    }
    index.step = number(metadata, index_keys::step, "");
    index.world_size = number(metadata, index_keys::world_size, "");
    index.total_size = number(metadata, index_keys::total_size, "");
    for (const auto& item : object_member(metadata, index_keys::files, "").items()) {
      const std::string& name = item.key();
      const nlohmann::json& entry = item.value();
      if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos ||
          name.find('\0') != std::string::npos) {
        fail("", join({"expected file names without '/', found '", printable_name(name), "'"}));
      }
      if (!entry.is_object()) fail("", join({"file '", name, "': expected an object"}));
      index.files[name] = IndexFile{number(entry, "bytes", ""), checksum(entry, "header_xxh3", "")};
    }
    std::map<std::string, std::string> weight_map;
    for (const auto& item : object_member(*root, index_keys::weight_map, "").items()) {
      const std::string& name = item.key();
      const nlohmann::json& file = item.value();
      if (!file.is_string()) fail(name, "expected weight_map values to be file names");
      weight_map[name] = file.get<std::string>();
    }
    for (const auto& item : object_member(metadata, index_keys::tensors, "").items()) {
      const std::string& name = item.key();
      const nlohmann::json& entry = item.value();
      index.tensors[name] = tensor(name, entry, index.files, weight_map);
    }
    if (!weight_map.empty()) {
      fail(weight_map.begin()->first,
           "expected every weight_map entry to be a piece of ckpt.tensors, found one that is not");
    }
    const nlohmann::json& user = member(metadata, index_keys::user_metadata);
    if (!user.is_null() && !user.is_object()) fail("", "expected ckpt.metadata to be a JSON object");
    if (user.is_object()) index.metadata = user;
    const nlohmann::json& chain = member(metadata, index_keys::chain);
    if (!chain.is_null()) index.chain = chain_of(chain, index.format_version);
    return index;
  }

 private:
  [[noreturn]] void fail(const std::string& tensor, const std::string& what) const {
    throw FormatError(ErrorId::format_metadata, path_, tensor, what);
  }
  const nlohmann::json& object_member(const nlohmann::json& object, const char* key, const std::string& tensor) const {
    const nlohmann::json& value = member(object, key);
    if (!value.is_object()) fail(tensor, join({"expected '", key, "' to be a JSON object"}));
    return value;
  }
  std::uint64_t number(const nlohmann::json& object, const char* key, const std::string& tensor) const {
    const std::optional<std::uint64_t> value = as_u64(member(object, key));
    if (!value) fail(tensor, join({"expected '", key, "' to be a non-negative integer"}));
    return *value;
  }
  std::string text(const nlohmann::json& object, const char* key, const std::string& tensor) const {
    const nlohmann::json& value = member(object, key);
    if (!value.is_string()) fail(tensor, join({"expected '", key, "' to be a string"}));
    return value.get<std::string>();
  }
  std::uint64_t checksum(const nlohmann::json& object, const char* key, const std::string& tensor) const {
    const std::optional<std::uint64_t> value = checksum_from_hex(text(object, key, tensor));
    if (!value) fail(tensor, join({"expected '", key, "' to be 16 lowercase hexadecimal digits"}));
    return *value;
  }
  Shape shape(const nlohmann::json& object, const char* key, const std::string& tensor) const {
    const std::optional<Shape> value = as_shape(member(object, key));
    if (!value) fail(tensor, join({"expected '", key, "' to be an array of non-negative integers"}));
    return *value;
  }

  // A relative directory name, as a chain names its checkpoints.
  std::string directory_name(const nlohmann::json& value) const {
    if (!value.is_string() || value.get<std::string>().empty() || value.get<std::string>().front() == '/' ||
        value.get<std::string>().find('\0') != std::string::npos) {
      fail("", join({"expected ckpt.chain to name directories by relative names, found ", excerpt(value.dump())}));
    }
    return value.get<std::string>();
  }

  IndexChain chain_of(const nlohmann::json& json, std::uint64_t version) const {
    if (version < first_chain_index_version || !json.is_object() || json.size() != 4) {
      fail("", join({"expected ckpt.chain, in an index of version ", first_chain_index_version,
                     ", to be an object of exactly parent, depth, chain_bytes and sources, found ",
                     excerpt(json.dump()), " in version ", version}));
    }
    IndexChain chain;
    chain.parent = directory_name(member(json, "parent"));
    chain.depth = number(json, "depth", "");
    chain.chain_bytes = number(json, "chain_bytes", "");
    const nlohmann::json& sources = member(json, "sources");
    if (!sources.is_array() || chain.depth == 0) {
      fail("", join({"expected ckpt.chain depth >= 1 and sources, an array, found ", excerpt(json.dump())}));
    }
    for (const nlohmann::json& source : sources) chain.sources.push_back(directory_name(source));
    return chain;
  }

  IndexTensor tensor(const std::string& name, const nlohmann::json& entry,
                     const std::map<std::string, IndexFile>& files,
                     std::map<std::string, std::string>& weight_map) const {
    if (const auto problem = tensor_name_problem(name)) fail(printable_name(name), *problem);
    if (!entry.is_object()) fail(name, "expected an object");
    IndexTensor tensor;
    const std::optional<DType> dtype = dtype_from_name(text(entry, "dtype", name));
    if (!dtype) fail(name, join({"expected dtype to be one of ", known_dtype_names()}));
    tensor.dtype = *dtype;
    tensor.shape = shape(entry, "shape", name);
    const nlohmann::json& pieces = member(entry, "pieces");
    if (!pieces.is_array()) fail(name, "expected 'pieces' to be an array");
    for (const nlohmann::json& item : pieces) {
      if (!item.is_object()) fail(name, "expected each piece to be an object");
      IndexPiece piece;
      if (item.contains("flat")) {
        const Shape range = shape(item, "flat", name);
        if (range.size() != 2 || range[0] > range[1])
          fail(name, "expected 'flat' to be [BEGIN, END] with BEGIN <= END");
        piece.geometry = PieceGeometry::flat(range[0], range[1] - range[0]);
      } else {
        piece.geometry = PieceGeometry::box(shape(item, "offsets", name), shape(item, "extents", name));
      }
      if (const auto problem = geometry_problem(piece.geometry, tensor.shape)) fail(name, *problem);
      piece.file = text(item, "file", name);
      if (!files.count(piece.file)) fail(name, join({"a piece names file '", piece.file, "', which ckpt.files lacks"}));
      piece.stored_name = text(item, "name", name);
      if (const auto problem = tensor_name_problem(piece.stored_name)) fail(name, join({"a piece's name: ", *problem}));
      piece.codec = text(item, "codec", name);
      if (piece.referenced()) {
        piece.xxh128 = content_hash_from_hex(text(item, "xxh128", name));
        if (!piece.xxh128) fail(name, "expected a referenced piece's 'xxh128' to be 32 lowercase hexadecimal digits");
        tensor.pieces.push_back(std::move(piece));
        continue;
      }
      const auto mapped = weight_map.find(piece.stored_name);
      if (mapped == weight_map.end() || mapped->second != piece.file) {
        fail(name, join({"expected weight_map to map '", piece.stored_name, "' to '", piece.file, "'"}));
      }
      weight_map.erase(mapped);
      piece.xxh3 = checksum(item, "xxh3", name);
      if (item.contains("raw_xxh3")) piece.raw_xxh3 = checksum(item, "raw_xxh3", name);
      tensor.pieces.push_back(std::move(piece));
    }
    std::vector<const PieceGeometry*> geometries;
    for (const IndexPiece& piece : tensor.pieces) geometries.push_back(&piece.geometry);
    // Counted before the tiling check enumerates them: a few bytes of index
    // can declare 10^12 runs.
    if (const auto problem = run_count_problem(geometries, tensor.shape)) fail(name, *problem);
    const auto label = [&](std::size_t i) { return join({"piece '", tensor.pieces[i].stored_name, "'"}); };
    if (const auto problem = tiling_problem(geometries, tensor.shape, label)) {
      fail(name, join({"the pieces do not tile ", shape_to_string(tensor.shape), ": ", *problem}));
    }
    return tensor;
  }

  std::string path_;
};

}  // namespace ckpt::detail

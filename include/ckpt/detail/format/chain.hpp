#pragma once

// The metadata of incremental checkpoints (docs/format.md, section 8):
// `ckpt.xxh128`, the content hash of each tensor a file stores, and
// `ckpt.chain`, the parent a file was saved against, the files holding the
// bytes it references and the references themselves. Built as text and
// parsed here; header_writer.hpp and header_parser.hpp place them.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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

namespace keys {
inline constexpr const char* content_hashes = "ckpt.xxh128";
inline constexpr const char* chain = "ckpt.chain";
}  // namespace keys

// The first format version with references (a reader of version 2 would see
// a child without its referenced tensors and load it as a smaller state).
inline constexpr int first_chain_format_version = 3;

// Another checkpoint file, by its name relative to the directory of the file
// naming it and the header checksum it had: a file replaced or rewritten
// since is not the one meant.
struct ChainFile {
  std::string file;
  std::uint64_t header_xxh3 = 0;
};

// A tensor this file does not store: its bytes are those of tensor
// `source_tensor` of sources[source], which stores them itself.
struct TensorReference {
  std::string name;
  DType dtype = DType::U8;
  Shape shape;
  ContentHash hash;
  std::size_t source = 0;
  std::string source_tensor;
};

// A tensor this file stores with the xor-delta codec: its stored chunks
// decode to its bytes XOR those of tensor `base_tensor` of sources[source]
// (read as that file reads it), whose content hash is `base_hash`.
struct DeltaBase {
  std::string name;
  std::size_t source = 0;
  std::string base_tensor;
  ContentHash base_hash;
};

// The codec name of a tensor stored as an XOR against its parent's tensor.
inline constexpr const char* xor_delta_codec = "xor-delta";

struct ChainInfo {
  ChainFile parent;
  std::uint64_t depth = 1;        // saves since the last full one: the parent's depth + 1 (a full file has 0)
  std::uint64_t chain_bytes = 0;  // decoded bytes the incremental files of the chain store, this one included
  std::vector<ChainFile> sources;
  std::vector<TensorReference> references;  // sorted by name
  std::vector<DeltaBase> deltas;            // sorted by name
};

// The functions below are templates on Json (always nlohmann::json) so that
// the compiler checks and instantiates their JSON code only in programs that
// call them (see "Compile time" in docs/architecture.md).
template <class Json = nlohmann::json>
std::string chain_file_json(const ChainFile& file) {
  return join({R"({"file":)", Json(file.file).dump(), R"(,"header_xxh3":")", checksum_to_hex(file.header_xxh3), "\"}"});
}

template <class Json = nlohmann::json>
std::string chain_json(const ChainInfo& chain) {
  std::string text = join({R"({"parent":)", chain_file_json(chain.parent), R"(,"depth":)", chain.depth,
                           R"(,"chain_bytes":)", chain.chain_bytes, R"(,"sources":[)"});
  for (std::size_t i = 0; i < chain.sources.size(); ++i)
    text += join({i ? "," : "", chain_file_json(chain.sources[i])});
  text += R"(],"references":{)";
  for (std::size_t i = 0; i < chain.references.size(); ++i) {
    const TensorReference& reference = chain.references[i];
    Json shape = reference.shape;
    text += join({(i ? "," : ""), Json(reference.name).dump(), R"(:{"dtype":")", dtype_name(reference.dtype),
                  R"(","shape":)", shape.dump(), R"(,"xxh128":")", content_hash_to_hex(reference.hash),
                  R"(","source":)", reference.source, R"(,"tensor":)", Json(reference.source_tensor).dump(), "}"});
  }
  text += R"(},"deltas":{)";
  for (std::size_t i = 0; i < chain.deltas.size(); ++i) {
    const DeltaBase& delta = chain.deltas[i];
    text += join({(i ? "," : ""), Json(delta.name).dump(), R"(:{"source":)", delta.source, R"(,"tensor":)",
                  Json(delta.base_tensor).dump(), R"(,"xxh128":")", content_hash_to_hex(delta.base_hash), "\"}"});
  }
  return join({text, "}}"});
}

template <class Json = nlohmann::json>
std::string content_hashes_json(const std::vector<std::pair<std::string, ContentHash>>& hashes) {
  std::string text = "{";
  for (std::size_t i = 0; i < hashes.size(); ++i) {
    text += join({(i ? "," : ""), Json(hashes[i].first).dump(), ":\"", content_hash_to_hex(hashes[i].second), "\""});
  }
  return join({text, "}"});
}

// Reads `ckpt.chain` (already parsed as JSON) of file `file`; every problem
// is format_metadata naming what was expected and found.
template <class Json = nlohmann::json>
class ChainParser {
 public:
  explicit ChainParser(const std::string& file) : file_(file) {}

  ChainInfo parse(const Json& json) const {
    if (!json.is_object() || json.size() != 6) {
      fail("",
           join({"expected ckpt.chain to be an object of exactly parent, depth, chain_bytes, sources, references and "
                 "deltas, found ",
                 excerpt(json.dump())}));
    }
    ChainInfo chain;
    chain.parent = file_of(member(json, "parent"), "parent");
    const auto depth = as_u64(member(json, "depth"));
    const auto chain_bytes = as_u64(member(json, "chain_bytes"));
    if (!depth || *depth == 0 || !chain_bytes) {
      fail("", join({"expected ckpt.chain depth, a positive integer, and chain_bytes, an integer, found ",
                     excerpt(json.dump(), 200)}));
    }
    chain.depth = *depth;
    chain.chain_bytes = *chain_bytes;
    const Json& sources = member(json, "sources");
    if (!sources.is_array())
      fail("", join({"expected ckpt.chain sources to be an array, found ", excerpt(sources.dump())}));
    for (const Json& source : sources) chain.sources.push_back(file_of(source, "source"));
    const Json& references = member(json, "references");
    if (!references.is_object()) {
      fail("", join({"expected ckpt.chain references to be an object, found ", excerpt(references.dump())}));
    }
    for (const auto& item : references.items())
      chain.references.push_back(reference_of(item.key(), item.value(), chain));
    const Json& deltas = member(json, "deltas");
    if (!deltas.is_object())
      fail("", join({"expected ckpt.chain deltas to be an object, found ", excerpt(deltas.dump())}));
    for (const auto& item : deltas.items()) chain.deltas.push_back(delta_of(item.key(), item.value(), chain));
    return chain;
  }

 private:
  [[noreturn]] void fail(const std::string& tensor, const std::string& what) const {
    throw FormatError(ErrorId::format_metadata, file_, tensor, what);
  }

  ChainFile file_of(const Json& json, const char* role) const {
    const Json& name = member(json, "file");
    const Json& checksum = member(json, "header_xxh3");
    const auto value = checksum.is_string() ? checksum_from_hex(checksum.template get<std::string>()) : std::nullopt;
    // A relative name: a chain moves with its directory.
    if (!json.is_object() || json.size() != 2 || !name.is_string() || name.template get<std::string>().empty() ||
        name.template get<std::string>().front() == '/' ||
        name.template get<std::string>().find('\0') != std::string::npos || !value) {
      fail("", join({"expected the ckpt.chain ", role,
                     " to be {\"file\": a relative file name, \"header_xxh3\": 16 lowercase hex digits}, found ",
                     excerpt(json.dump())}));
    }
    return {name.template get<std::string>(), *value};
  }

  TensorReference reference_of(const std::string& name, const Json& json, const ChainInfo& chain) const {
    if (auto problem = tensor_name_problem(name)) fail(printable_name(excerpt(name)), *problem);
    const Json& dtype = member(json, "dtype");
    // value_or, not *: g++ 12 sees a path reading the optional empty otherwise.
    const DType parsed_dtype =
        dtype.is_string() ? dtype_from_name(dtype.template get<std::string>()).value_or(DType::U8) : DType::U8;
    const bool dtype_known = dtype.is_string() && dtype_from_name(dtype.template get<std::string>()).has_value();
    const auto shape = as_shape(member(json, "shape"));
    const Json& hash = member(json, "xxh128");
    const auto parsed_hash = hash.is_string() ? content_hash_from_hex(hash.template get<std::string>()) : std::nullopt;
    const auto source = as_u64(member(json, "source"));
    const Json& tensor = member(json, "tensor");
    if (!json.is_object() || json.size() != 5 || !dtype_known || !shape || !checked_byte_size(parsed_dtype, *shape) ||
        !parsed_hash || !source || *source >= chain.sources.size() || !tensor.is_string() ||
        tensor_name_problem(tensor.template get<std::string>())) {
      fail(name,
           join({"expected a reference {dtype, shape, xxh128 (32 lowercase hex digits), source (an index below ",
                 chain.sources.size(), "), tensor (a tensor name)} in ckpt.chain, found ", excerpt(json.dump())}));
    }
    return {name,
            parsed_dtype,
            *shape,
            *parsed_hash,
            static_cast<std::size_t>(*source),
            tensor.template get<std::string>()};
  }

  DeltaBase delta_of(const std::string& name, const Json& json, const ChainInfo& chain) const {
    const auto source = as_u64(member(json, "source"));
    const Json& tensor = member(json, "tensor");
    const Json& hash = member(json, "xxh128");
    const auto parsed_hash = hash.is_string() ? content_hash_from_hex(hash.template get<std::string>()) : std::nullopt;
    if (!json.is_object() || json.size() != 3 || !source || *source >= chain.sources.size() || !tensor.is_string() ||
        tensor_name_problem(tensor.template get<std::string>()) || !parsed_hash) {
      fail(name, join({"expected a delta base {source (an index below ", chain.sources.size(),
                       "), tensor (a tensor name), xxh128 (32 lowercase hex digits)} in ckpt.chain, found ",
                       excerpt(json.dump())}));
    }
    return {name, static_cast<std::size_t>(*source), tensor.template get<std::string>(), *parsed_hash};
  }

  const std::string& file_;
};

// Reads `ckpt.xxh128` of a file whose header holds `tensors`: one hash per
// stored tensor, each of 32 lowercase hex digits.
template <class Json = nlohmann::json>
std::map<std::string, ContentHash> parse_content_hashes(const Json& json, const std::vector<TensorRecord>& tensors,
                                                        const std::string& file) {
  std::map<std::string, ContentHash> hashes;
  if (json.is_object() && json.size() == tensors.size()) {
    for (const TensorRecord& record : tensors) {
      const auto found = json.find(record.name);
      if (found == json.end() || !found->is_string()) break;
      const auto hash = content_hash_from_hex(found->template get<std::string>());
      if (!hash) break;
      hashes.emplace(record.name, *hash);
    }
  }
  if (hashes.size() != tensors.size()) {
    throw FormatError(ErrorId::format_metadata, file, "",
                      join({"expected ckpt.xxh128 to hold a hash of 32 lowercase hex digits for each of the ",
                            tensors.size(), " tensors of the header, found ", excerpt(json.dump())}));
  }
  return hashes;
}

}  // namespace ckpt::detail

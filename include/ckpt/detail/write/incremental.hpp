#pragma once

// What an incremental save decides before it writes (docs/format.md,
// section 8): the content hash of every tensor, computed from the caller's
// memory on the save's threads; which tensors equal one the parent stores or
// references, found from the parent's header alone (its data is never read);
// and, by the chain policy, whether this save is a full one after all. The
// tensors left are stored by the ordinary streaming save (pipeline.hpp).
// Templates only so that programs that never save do not compile them, and
// every type a standard container or optional makes here depends on their
// parameter `Void` (always void): g++ checks a template's code that does not
// depend on a parameter where the template is defined, and so instantiated
// those classes in every program that includes ckpt.hpp (see "Compile time"
// in docs/architecture.md).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/chain.hpp"
#include "ckpt/detail/format/content_hash.hpp"
#include "ckpt/detail/format/header_parser.hpp"
#include "ckpt/detail/format/header_writer.hpp"
#include "ckpt/detail/order.hpp"
#include "ckpt/detail/os/mapped_file.hpp"
#include "ckpt/detail/os/thread_pool.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/detail/write/plan.hpp"
#include "ckpt/error.hpp"
#include "ckpt/incremental.hpp"
#include "ckpt/reader.hpp"
#include "ckpt/tensor.hpp"

namespace ckpt::detail {

// `T`, as a type that depends on `Void`: a template's variables declared with
// it, and the calls on them, are checked only where it is instantiated.
template <class T, class Void>
struct deferred {
  using type = T;
};
template <class T, class Void>
using Deferred = typename deferred<T, Void>::type;

// The tensors a save stores and what its header says about the others.
template <class Void = void>
struct ContentPlan {
  bool hashed = false;              // content hashes were computed (ckpt.xxh128 is written)
  std::vector<NamedTensor> stored;  // with `hashed`: the tensors this file stores, in the caller's order
  std::map<std::string, ContentHash> stored_hashes;
  std::optional<ChainInfo> chain;  // set when the file references anything or stores xor-deltas
  std::uint64_t referenced_bytes = 0;
  std::map<std::string, BaseReader> bases;  // the xor-delta tensors, by name

  HeaderExtras header_extras() const {
    HeaderExtras extras;
    if (!hashed) return extras;
    extras.metadata.emplace_back(keys::content_hashes,
                                 content_hashes_json(Deferred<std::vector<std::pair<std::string, ContentHash>>, Void>(
                                     stored_hashes.begin(), stored_hashes.end())));
    if (chain) {
      extras.format_version = first_chain_format_version;
      extras.metadata.emplace_back(keys::chain, chain_json(*chain));
    }
    return extras;
  }
};

// `target` as a name relative to the directory `from` (both lexically
// normalized absolute paths): how a file names another in its chain.
inline std::string relative_file_name(const std::filesystem::path& target, const std::filesystem::path& from) {
  return target.lexically_relative(from).generic_string();
}

inline std::filesystem::path absolute_path(const std::string& path) {
  return std::filesystem::absolute(std::filesystem::path(path)).lexically_normal();
}

// Where the bytes of a tensor with some content can be found in the parent's
// chain: a file holding them itself and the tensor's name there.
struct ContentSource {
  std::string file;  // relative to the child's directory
  std::uint64_t header_xxh3 = 0;
  std::string tensor;
};

// A content as a save looks it up: its hash, dtype and shape, ordered in that
// order. A struct rather than a std::tuple, whose class and comparisons
// every program that includes ckpt.hpp compiled.
struct ContentKey {
  ContentHash hash;
  DType dtype;
  Shape shape;

  template <class = void>
  friend bool operator<(const ContentKey& a, const ContentKey& b) {
    if (a.hash != b.hash) return a.hash < b.hash;
    if (a.dtype != b.dtype) return a.dtype < b.dtype;
    return a.shape < b.shape;
  }
};

// Every content a parent holds, and where.
template <class Void = void>
using ContentIndex = Deferred<std::map<ContentKey, ContentSource>, Void>;

// The base of an xor-delta tensor: a tensor of a file of the chain, read as
// that file reads it (through its own references and deltas), and the
// content hash that file records for it.
struct DeltaSource {
  ContentSource base;  // base.file is relative to the child's directory
  std::string path;    // the same file, as this process opens it
  ContentHash hash;
};

// By tensor, where the parent holds its content, and the base of an xor-delta.
template <class Void = void>
using FoundContents = Deferred<std::vector<std::optional<ContentSource>>, Void>;
template <class Void = void>
using DeltaSources = Deferred<std::vector<std::optional<DeltaSource>>, Void>;

// Every content the parent stores (with a recorded hash) or references, by
// content, dtype and shape. Reads the parent's header only.
template <class Void = void>
ContentIndex<Void> parent_contents(const ParsedHeader& parent, const std::string& parent_path,
                                   const std::filesystem::path& child_directory) {
  const std::filesystem::path parent_absolute = absolute_path(parent_path);
  const std::string parent_name = relative_file_name(parent_absolute, child_directory);
  ContentIndex<Void> contents;
  for (const TensorRecord& record : parent.tensors) {
    const auto hash = parent.content_hashes.find(record.name);
    if (hash == parent.content_hashes.end()) continue;
    contents.emplace(ContentKey{hash->second, record.dtype, record.shape},
                     ContentSource{parent_name, parent.header_xxh3, record.name});
  }
  if (!parent.chain) return contents;
  for (const TensorReference& reference : parent.chain->references) {
    const ChainFile& source = parent.chain->sources[reference.source];
    const std::filesystem::path absolute = (parent_absolute.parent_path() / source.file).lexically_normal();
    contents.emplace(
        ContentKey{reference.hash, reference.dtype, reference.shape},
        ContentSource{relative_file_name(absolute, child_directory), source.header_xxh3, reference.source_tensor});
  }
  return contents;
}

// The content hash the parent records for its tensor `name` of `dtype` and
// `shape` (stored or referenced): an xor-delta base. Nullopt when it has none.
template <class Void = void>
Deferred<std::optional<ContentHash>, Void> parent_content_of(const ParsedHeader& parent, const std::string& name,
                                                             DType dtype, const Shape& shape) {
  for (const TensorRecord& record : parent.tensors) {
    if (record.name != name) continue;
    const auto hash = parent.content_hashes.find(record.name);
    if (record.dtype != dtype || record.shape != shape || hash == parent.content_hashes.end()) break;
    return hash->second;
  }
  if (parent.chain) {
    for (const TensorReference& reference : parent.chain->references) {
      if (reference.name == name && reference.dtype == dtype && reference.shape == shape) return reference.hash;
    }
  }
  return std::nullopt;
}

// The content hash of each tensor, computed on `threads` threads. One
// tensor is hashed by one thread, so the largest are handed out first: a
// large tensor started last would leave the other threads idle while it
// finishes.
template <class Void = void>
Deferred<std::vector<ContentHash>, Void> content_hashes_of(const std::vector<NamedTensor>& tensors, unsigned threads) {
  const Deferred<std::vector<std::size_t>, Void> largest_first =
      stable_order(tensors.size(),
                   [&](std::size_t a, std::size_t b) { return tensors[a].view.nbytes() > tensors[b].view.nbytes(); });
  Deferred<std::vector<ContentHash>, Void> hashes(tensors.size());
  parallel_for(tensors.size(), threads, [&](std::size_t k) {
    const TensorView& view = tensors[largest_first[k]].view;
    hashes[largest_first[k]] = content_hash(view.data(), view.nbytes());
  });
  return hashes;
}

// Refuses a chain policy no save can follow.
template <class = void>
void check_chain_policy(const std::string& path, const IncrementalOptions& options) {
  if (options.full_every == 0 || !(options.max_chain_fraction >= 0)) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        join({"expected incremental.full_every >= 1 and max_chain_fraction >= 0, found ",
                              options.full_every, " and ", std::to_string(options.max_chain_fraction)}));
  }
}

// The chain policy (docs/format.md, section 8): whether a save against a
// parent of `parent_depth` and `parent_chain_bytes` that would store
// `stored_bytes` of its `total_bytes` is written full instead.
inline bool chain_policy_wants_full(const IncrementalOptions& options, std::uint64_t parent_depth,
                                    std::uint64_t parent_chain_bytes, std::uint64_t stored_bytes,
                                    std::uint64_t total_bytes, bool any_delta) {
  return parent_depth + 1 >= options.full_every ||
         double(parent_chain_bytes + stored_bytes) > options.max_chain_fraction * double(total_bytes) ||
         (stored_bytes == total_bytes && !any_delta);
}

// Completes `plan` (hashed): stores tensors[i] unless found[i] holds its
// content (a reference in `chain`, set whenever any found[i] or
// delta_bases[i] is), as an xor-delta against delta_bases[i] when that is
// set. Opens each file holding a base once; the save reads the bases
// through it (which may itself reference or delta-encode them).
template <class Void>
ContentPlan<Void> assemble_content(ContentPlan<Void> plan, const std::vector<NamedTensor>& tensors,
                                   const std::vector<ContentHash>& hashes, const FoundContents<Void>& found,
                                   const DeltaSources<Void>& delta_bases, std::optional<ChainInfo> chain) {
  Deferred<std::map<std::string, std::size_t>, Void> source_numbers;
  const auto source_number = [&](const std::string& file, std::uint64_t header_xxh3) {
    const auto number = source_numbers.emplace(file, chain->sources.size());
    if (number.second) chain->sources.push_back({file, header_xxh3});
    return number.first->second;
  };
  Deferred<std::map<std::string, std::shared_ptr<const Reader>>, Void> base_files;  // by path
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!found[i]) {
      plan.stored.push_back(tensors[i]);
      plan.stored_hashes.emplace(tensors[i].name, hashes[i]);
      if (delta_bases[i]) {
        const DeltaSource& delta = *delta_bases[i];
        chain->deltas.push_back(
            {tensors[i].name, source_number(delta.base.file, delta.base.header_xxh3), delta.base.tensor, delta.hash});
        std::shared_ptr<const Reader>& file = base_files[delta.path];
        if (!file) file = std::make_shared<const Reader>(delta.path);
        plan.bases.emplace(tensors[i].name,
                           [file, base = delta.base.tensor](std::uint64_t begin, std::uint64_t end, std::byte* out) {
                             file->read_range(base, begin, end, out);
                           });
      }
      continue;
    }
    const ContentSource& source = *found[i];
    const std::size_t number = source_number(source.file, source.header_xxh3);
    const TensorView& view = tensors[i].view;
    chain->references.push_back({tensors[i].name, view.dtype(), view.shape(), hashes[i], number, source.tensor});
    plan.referenced_bytes += view.nbytes();
  }
  if (chain) {
    stable_sort_items(chain->references,
                      [](const TensorReference& a, const TensorReference& b) { return a.name < b.name; });
    stable_sort_items(chain->deltas, [](const DeltaBase& a, const DeltaBase& b) { return a.name < b.name; });
  }
  plan.chain = std::move(chain);
  return plan;
}

// What a save against a parent learns from the parent's header (its data is
// never read): the contents it can reference and the chain it continues.
template <class Void = void>
struct ParentIndex {
  std::filesystem::path child_directory;  // of the file being saved
  ParsedHeader header;
  ContentIndex<Void> contents;
};

// Reads the parent's header; refuses a parent that is the file being saved.
template <class Void>
ParentIndex<Void> read_parent(const std::string& path, const IncrementalOptions& options) {
  const std::filesystem::path child = absolute_path(path);
  if (absolute_path(options.parent.path()) == child) {
    throw ArgumentError(ErrorId::argument_invalid, path, "",
                        "expected a parent checkpoint other than the file being saved, found the same file");
  }
  const MappedFile parent_file(options.parent.path());
  ParentIndex<Void> parent{
      child.parent_path(), HeaderParser<>(options.parent.path(), parent_file.data(), parent_file.size()).parse(), {}};
  parent.contents = parent_contents<Void>(parent.header, options.parent.path(), parent.child_directory);
  return parent;
}

// Replaces in `plan` (hashed) the tensors `parent` holds by references,
// unless the chain policy asks for a full save.
template <class Void>
ContentPlan<Void> reference_parent_contents(ContentPlan<Void> plan, const std::vector<NamedTensor>& tensors,
                                            const std::vector<ContentHash>& hashes, const ParentIndex<Void>& parent,
                                            const IncrementalOptions& options) {
  FoundContents<Void> found(tensors.size());
  DeltaSources<Void> delta_bases(tensors.size());
  std::uint64_t total_bytes = 0, stored_bytes = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const TensorView& view = tensors[i].view;
    total_bytes += view.nbytes();
    const auto source = parent.contents.find(ContentKey{hashes[i], view.dtype(), view.shape()});
    if (source != parent.contents.end()) {
      found[i] = source->second;
    } else {
      stored_bytes += view.nbytes();
    }
  }
  const std::string parent_name = relative_file_name(absolute_path(options.parent.path()), parent.child_directory);
  if (options.xor_delta) {
    // The base is the parent's tensor of the same name, dtype and shape.
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const NamedTensor& tensor = tensors[i];
      if (found[i]) continue;
      if (const auto base =
              parent_content_of<Void>(parent.header, tensor.name, tensor.view.dtype(), tensor.view.shape())) {
        delta_bases[i] =
            DeltaSource{{parent_name, parent.header.header_xxh3, tensor.name}, options.parent.path(), *base};
      }
    }
  }
  const bool any_delta =
      std::any_of(delta_bases.begin(), delta_bases.end(), [](const auto& base) { return base.has_value(); });
  const std::uint64_t parent_depth = parent.header.chain ? parent.header.chain->depth : 0;
  const std::uint64_t parent_chain_bytes = parent.header.chain ? parent.header.chain->chain_bytes : 0;
  std::optional<ChainInfo> chain;
  if (chain_policy_wants_full(options, parent_depth, parent_chain_bytes, stored_bytes, total_bytes, any_delta)) {
    std::fill(found.begin(), found.end(), std::nullopt);
    std::fill(delta_bases.begin(), delta_bases.end(), std::nullopt);
  } else {
    chain = ChainInfo{
        {parent_name, parent.header.header_xxh3}, parent_depth + 1, parent_chain_bytes + stored_bytes, {}, {}, {}};
  }
  return assemble_content(std::move(plan), tensors, hashes, found, delta_bases, std::move(chain));
}

// The first blocks of the parent's contents of one dtype and shape, as far
// as its header tells: a raw tensor records the checksum of each block of
// its bytes; a reference or an encoded tensor says nothing of its decoded
// bytes' blocks.
struct FirstBlocks {
  bool known = true;                // every content's first block has a checksum, all blocks of block_bytes
  std::uint64_t block_bytes = 0;    // when known
  std::vector<std::uint64_t> xxh3;  // when known: of each content's first block
};

// By dtype and shape.
template <class Void = void>
using FirstBlocksByShape = Deferred<std::map<std::pair<DType, Shape>, FirstBlocks>, Void>;

// By dtype and shape, the first blocks of every content `parent` holds.
template <class Void>
FirstBlocksByShape<Void> parent_first_blocks(const ParsedHeader& parent) {
  FirstBlocksByShape<Void> blocks;
  for (const TensorRecord& record : parent.tensors) {
    if (parent.content_hashes.count(record.name) == 0) continue;  // not a content a save may reference
    FirstBlocks& first = blocks[{record.dtype, record.shape}];
    const bool same_blocks = first.xxh3.empty() || first.block_bytes == record.block_bytes;
    if (record.encoded() || !record.block_checksummed || record.block_xxh3.empty() || !same_blocks) {
      first.known = false;
      continue;
    }
    first.block_bytes = record.block_bytes;
    first.xxh3.push_back(record.block_xxh3[0]);
  }
  if (parent.chain) {
    for (const TensorReference& reference : parent.chain->references) {
      blocks[{reference.dtype, reference.shape}].known = false;
    }
  }
  return blocks;
}

// A header no outcome of the content hashes outgrows (with records of every
// tensor stored at their widest): every tensor's content hash, and a
// reference for each tensor `may_be_held` says the parent may hold, to its
// longest-named content in the last of all its sources.
template <class Void>
ContentPlan<Void> header_bound(const std::vector<NamedTensor>& tensors, const std::vector<char>& may_be_held,
                               const ParentIndex<Void>& parent, const std::string& parent_path) {
  ContentPlan<Void> bound;
  bound.hashed = true;
  std::uint64_t total_bytes = 0;
  for (const NamedTensor& tensor : tensors) {
    bound.stored_hashes.emplace(tensor.name, ContentHash{});
    total_bytes += tensor.view.nbytes();
  }
  const ParsedHeader& header = parent.header;
  ChainInfo chain{{relative_file_name(absolute_path(parent_path), parent.child_directory), header.header_xxh3},
                  (header.chain ? header.chain->depth : 0) + 1,
                  (header.chain ? header.chain->chain_bytes : 0) + total_bytes,
                  {},
                  {},
                  {}};
  Deferred<std::map<std::string, char>, Void> source_files;
  std::string longest_name;
  for (const auto& content : parent.contents) {
    const ContentSource& source = content.second;
    if (source_files.emplace(source.file, 0).second) chain.sources.push_back({source.file, source.header_xxh3});
    if (nlohmann::json(source.tensor).dump().size() > nlohmann::json(longest_name).dump().size()) {
      longest_name = source.tensor;
    }
  }
  const std::size_t last_source = chain.sources.empty() ? 0 : chain.sources.size() - 1;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (!may_be_held[i]) continue;
    const TensorView& view = tensors[i].view;
    chain.references.push_back({tensors[i].name, view.dtype(), view.shape(), ContentHash{}, last_source, longest_name});
  }
  bound.chain = std::move(chain);
  return bound;
}

// A save without a parent: with `content_hashes`, every tensor stored and
// its content hash recorded; else nothing to plan. `path` is the file being
// saved. (A save against a parent is planned by save_against_parent,
// writer.hpp.)
template <class Void>
ContentPlan<Void> plan_content(const std::string& path, const std::vector<NamedTensor>& tensors,
                               const IncrementalOptions& options, unsigned threads) {
  ContentPlan<Void> plan;
  if (!options.content_hashes) return plan;
  check_chain_policy(path, options);
  plan.hashed = true;
  plan.stored = tensors;
  const auto hashes = content_hashes_of<Void>(tensors, threads);
  for (std::size_t i = 0; i < tensors.size(); ++i) plan.stored_hashes.emplace(tensors[i].name, hashes[i]);
  return plan;
}

}  // namespace ckpt::detail

#pragma once

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>

namespace ckpt {

struct SaveStats;  // writer.hpp

namespace detail {
struct SaveRequest;  // writer.hpp
class ParentAccess;  // writer.hpp
// A save against a parent (writer.hpp).
template <class Void>
SaveStats save_against_parent(const SaveRequest& request);
}  // namespace detail

// The checkpoint an incremental save is compared with: a path, given as a
// std::string or a C string. A save reaches the incremental save's code
// (the parent's header index, hashing while writing, references and
// xor-deltas) only through the function this assignment stores, so a
// program that never names a parent does not compile that code: at -O2 it
// was a tenth of a program that saves and loads.
class ParentCheckpoint {
 public:
  ParentCheckpoint() = default;
  template <class Path, std::enable_if_t<std::is_convertible_v<Path&&, std::string>, int> = 0>
  ParentCheckpoint(Path&& path)  // NOLINT(google-explicit-constructor): assigned as a path
      : path_(std::forward<Path>(path)), save_(&detail::save_against_parent<std::void_t<Path>>) {}

  const std::string& path() const noexcept { return path_; }
  bool empty() const noexcept { return path_.empty(); }

 private:
  friend class detail::ParentAccess;

  std::string path_;
  SaveStats (*save_)(const detail::SaveRequest&) = nullptr;
};

// Incremental saves: SaveOptions::incremental (docs/format.md, section 8).
struct IncrementalOptions {
  // The checkpoint this save is compared with: each tensor whose content
  // equals one the parent stores or references is referenced instead of
  // written. Empty: a full save.
  ParentCheckpoint parent;
  // Record the content hash of every stored tensor (ckpt.xxh128), which a
  // later save needs to use this file as its parent. Always on with a parent.
  bool content_hashes = false;
  // Store each changed tensor whose parent has a tensor of the same name,
  // dtype and shape as the XOR of their bits, byte-shuffled and compressed
  // with zstd (codec "xor-delta"): nearby versions of weights differ in their
  // low bits, so the XOR compresses far better. Needs zstd; other tensors are
  // stored by SaveOptions::codecs. In a distributed save, the base of a
  // changed piece is the parent checkpoint's piece of the same tensor and
  // box, in whichever rank file holds it (docs/distributed.md, section 6).
  bool xor_delta = false;
  // Chain policy. A full save every `full_every` saves: with the default 10,
  // a full save is followed by at most 9 incremental ones, so a load reads
  // from at most 10 files (more only through xor-delta bases, read through
  // each parent). 1 makes every save full.
  std::size_t full_every = 10;
  // A full save also when the incremental files since the last full one
  // would store more than this fraction of the state's decoded bytes: the
  // chain then costs more disk than starting afresh.
  double max_chain_fraction = 1.0;
};

}  // namespace ckpt

#pragma once

#include <cstddef>
#include <string>

namespace ckpt {

// Incremental saves: SaveOptions::incremental (docs/format.md, section 8).
struct IncrementalOptions {
  // The checkpoint this save is compared with: each tensor whose content
  // equals one the parent stores or references is referenced instead of
  // written. Empty: a full save.
  std::string parent;
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

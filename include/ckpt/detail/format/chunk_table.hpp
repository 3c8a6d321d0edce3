#pragma once

// The rule an encoded tensor's chunk table follows (docs/format.md, sections
// 3 and 5), in one place: the header parser checks it before trusting a
// table, the decoder before allocating for one, and the writer before
// writing one no reader would accept.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"

namespace ckpt::detail {

// Chunks of `chunk_bytes` that `raw_bytes` make: the last one holds the rest.
inline std::uint64_t chunk_count(std::uint64_t raw_bytes, std::uint64_t chunk_bytes) {
  return raw_bytes / chunk_bytes + (raw_bytes % chunk_bytes != 0);
}

// Decoded size of chunk `index` of a tensor of `raw_bytes` in chunks of `chunk_bytes`.
inline std::uint64_t chunk_decoded_bytes(std::uint64_t raw_bytes, std::uint64_t chunk_bytes, std::size_t index) {
  return std::min(chunk_bytes, raw_bytes - index * chunk_bytes);
}

// The fewest stored bytes a chunk of `decoded_bytes` may have: 1/max_expansion
// of them, rounded up, so that a small stream cannot declare gigabytes.
inline std::uint64_t min_stored_bytes(std::uint64_t decoded_bytes) noexcept {
  return decoded_bytes / max_expansion + (decoded_bytes % max_expansion != 0);
}

// What is wrong with the chunk table of an encoded tensor of `raw_bytes`
// decoded bytes of elements of `element_size` bytes, cut into chunks of
// `chunk_bytes` whose stored sizes `chunk_sizes` fill `stored_bytes`; nullopt
// when nothing is. Checks cost one pass over the table and allocate nothing
// that the table's size does not bound.
inline std::optional<std::string> chunk_table_problem(std::uint64_t raw_bytes, std::uint64_t element_size,
                                                      std::uint64_t chunk_bytes,
                                                      const std::vector<std::uint64_t>& chunk_sizes,
                                                      std::uint64_t stored_bytes) {
  if (element_size == 0 || chunk_bytes == 0 || chunk_bytes % element_size != 0 || chunk_bytes > max_chunk_bytes) {
    return join({"expected chunk_bytes to be a positive multiple of the element size ", element_size, " of at most ",
                 max_chunk_bytes, ", found ", chunk_bytes});
  }
  const std::uint64_t expected_chunks = chunk_count(raw_bytes, chunk_bytes);
  if (chunk_sizes.size() != expected_chunks) {
    return join({"expected ", expected_chunks, " chunk sizes for ", raw_bytes, " bytes in chunks of ", chunk_bytes,
                 ", found ", chunk_sizes.size()});
  }
  const std::string expected_sum =
      join({"expected chunk sizes adding up to the ", stored_bytes, " stored bytes, found "});
  std::uint64_t sum = 0;
  for (std::uint64_t size : chunk_sizes) {
    if (size > stored_bytes - sum) return join({expected_sum, "more"});  // also where a plain sum would overflow
    sum += size;
  }
  if (sum != stored_bytes) return join({expected_sum, sum});
  for (std::size_t i = 0; i < chunk_sizes.size(); ++i) {
    const std::uint64_t decoded = chunk_decoded_bytes(raw_bytes, chunk_bytes, i);
    if (chunk_sizes[i] < min_stored_bytes(decoded)) {
      return join({"expected chunk ", i, " of ", decoded, " decoded bytes to be stored in at least ",
                   min_stored_bytes(decoded), " bytes (1/", max_expansion, " of them), found ", chunk_sizes[i]});
    }
  }
  return std::nullopt;
}

// Throws FormatError format_metadata naming `file` and `tensor` when the chunk
// table breaks the rule: a bad table is a malformed file wherever it is found.
inline void check_chunk_table(std::uint64_t raw_bytes, std::uint64_t element_size, std::uint64_t chunk_bytes,
                              const std::vector<std::uint64_t>& chunk_sizes, std::uint64_t stored_bytes,
                              const std::string& file, const std::string& tensor) {
  if (auto problem = chunk_table_problem(raw_bytes, element_size, chunk_bytes, chunk_sizes, stored_bytes)) {
    throw FormatError(ErrorId::format_metadata, file, tensor, *problem);
  }
}

}  // namespace ckpt::detail

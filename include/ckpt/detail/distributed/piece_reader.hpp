#pragma once

// Reads a piece of a global tensor (any box or flat range, in the loading
// rank's split) from the pieces it was saved in (the saving ranks' split):
// the overlaps of the two are contiguous element ranges on both sides, so
// each is a range of bytes needed. A raw piece's ranges, however many and
// small (the row slices of a column split), are copied straight from the
// file by one Reader::read_ranges; an encoded piece's are read in windows,
// so that many small ranges of one chunk decode it once.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ckpt/detail/distributed/directory.hpp"
#include "ckpt/detail/distributed/geometry.hpp"
#include "ckpt/detail/distributed/index.hpp"
#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/reader.hpp"

namespace ckpt::detail {

// A template only so that programs that load no distributed checkpoint do not
// compile it (docs/architecture.md, "Compile time").
template <class = void>
class PieceReader {
 public:
  // Bytes decoded at once from an encoded piece to serve several small ranges.
  static constexpr std::uint64_t window_bytes = std::uint64_t(32) << 20;

  PieceReader(std::string directory, const CheckpointIndex& index, ReadOptions options)
      : directory_(std::move(directory)), index_(index), options_(options) {}

  // Fills `out` with the elements of `wanted`, a piece of tensor `name`, in
  // the piece's row-major order.
  void read(const std::string& name, const IndexTensor& tensor, const PieceGeometry& wanted, std::byte* out) {
    const std::size_t element = dtype_size(tensor.dtype);
    for (const IndexPiece& piece : tensor.pieces) {
      std::vector<ElementCopy> copies;
      for_each_overlap(piece.geometry, wanted, tensor.shape,
                       [&copies](const ElementCopy& copy) { copies.push_back(copy); });
      if (copies.empty()) continue;
      const Reader& reader = open(piece.file);
      check_stored(reader, name, tensor, piece);
      if (piece.codec == raw_codec) {
        ranges_.clear();
        for (const ElementCopy& copy : copies) {
          ranges_.push_back({copy.source * element, (copy.source + copy.count) * element, copy.target * element});
        }
        reader.read_ranges(piece.stored_name, ranges_, out);
      } else {
        read_windows(reader, piece.stored_name, copies, element, out);
      }
    }
  }

 private:
  // Opens a file of the checkpoint once, and checks that it is the file the
  // index committed: its header checksum covers every tensor's checksum.
  const Reader& open(const std::string& file) {
    std::unique_ptr<Reader>& reader = readers_[file];
    if (reader) return *reader;
    const std::string path = join({directory_, "/", file});
    reader = std::make_unique<Reader>(path, options_);
    if (const auto problem = committed_file_problem(*reader, index_.files.at(file))) {
      reader.reset();
      throw *problem;
    }
    return *reader;
  }

  void check_stored(const Reader& reader, const std::string& name, const IndexTensor& tensor,
                    const IndexPiece& piece) const {
    const TensorInfo* info = reader.find(piece.stored_name);
    const Shape expected = piece.geometry.stored_shape(tensor.shape);
    if (info == nullptr || info->dtype != tensor.dtype || info->shape != expected || info->codec != piece.codec) {
      const std::string found =
          info == nullptr
              ? "no such tensor"
              : join({dtype_name(info->dtype), " ", shape_to_string(info->shape), " (codec ", info->codec, ")"});
      throw FormatError(ErrorId::format_metadata, reader.path(), piece.stored_name,
                        join({"the index stores a piece of '", name, "' here: expected ", dtype_name(tensor.dtype), " ",
                              shape_to_string(expected), " (codec ", piece.codec, "), found ", found}));
    }
  }

  // Serves copies sorted by source position from windows of at most
  // window_bytes: a copy alone in its window goes straight to `out`.
  void read_windows(const Reader& reader, const std::string& stored_name, const std::vector<ElementCopy>& copies,
                    std::size_t element, std::byte* out) {
    for (std::size_t first = 0; first < copies.size();) {
      const std::uint64_t begin = copies[first].source * element;
      std::size_t last = first;
      while (last + 1 < copies.size() &&
             (copies[last + 1].source + copies[last + 1].count) * element - begin <= window_bytes) {
        ++last;
      }
      if (last == first) {
        const ElementCopy& copy = copies[first];
        reader.read_range(stored_name, begin, (copy.source + copy.count) * element, out + copy.target * element);
      } else {
        const std::uint64_t end = (copies[last].source + copies[last].count) * element;
        window_.resize(end - begin);
        reader.read_range(stored_name, begin, end, window_.data());
        for (std::size_t i = first; i <= last; ++i) {
          std::memcpy(out + copies[i].target * element, window_.data() + (copies[i].source * element - begin),
                      copies[i].count * element);
        }
      }
      first = last + 1;
    }
  }

  std::string directory_;
  const CheckpointIndex& index_;
  ReadOptions options_;
  std::map<std::string, std::unique_ptr<Reader>> readers_;
  std::vector<std::byte> window_;
  std::vector<ByteRangeCopy> ranges_;
};

}  // namespace ckpt::detail

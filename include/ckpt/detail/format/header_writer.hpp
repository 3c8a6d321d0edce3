#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/detail/format/checksum.hpp"
#include "ckpt/detail/format/layout.hpp"
#include "ckpt/detail/text.hpp"
#include "ckpt/error.hpp"
#include "ckpt/version.hpp"

// Builds the bytes before a checkpoint's data buffer (docs/format.md,
// sections 1 to 4) from the tensors' records.
namespace ckpt::detail {

// The header is written as text, member by member in the order
// docs/format.md gives, rather than through nlohmann's ordered_json: that
// type inserts in linear time (a header may hold many thousands of tensors),
// and as a second instantiation of basic_json it doubled the JSON code every
// program that saves compiles. It is written in one pass into one string,
// without a temporary per member: a header of 100,000 tensors is about 20 MB,
// and its cost used to be the save's largest. The same pass, run through a
// sink that only counts, gives the size a streaming save reserves, so the two
// can never disagree. Everything here is a template only so that programs
// that write no file do not compile it (see "Compile time" in
// docs/architecture.md).

// Every sink takes text four ways: put(text) and put(char) for any text,
// put_plain(text) for text known to hold neither '"' nor '\\' (names checked
// plain), which EscapedText passes on unscanned, put_json(text, escaped) for
// the format's own pieces of JSON (JsonPiece); and numbers two ways,
// put_decimal(value) and put_hex(value) (16 digits), which the sink that only
// counts sizes without printing them: the counting pass runs over every
// number of every tensor, and printing them cost most of its time.

// The number of decimal digits of `value`. Four digits a division: most
// numbers of a header are sizes and offsets of several digits.
inline std::size_t decimal_digits(std::uint64_t value) noexcept {
  std::size_t digits = 1;
  for (; value >= 10000; value /= 10000) digits += 4;
  return digits + (value >= 10) + (value >= 100) + (value >= 1000);
}

// Collects the header's text. It writes through a cursor into a buffer sized
// up front (a save knows its header's size from the reservation) rather than
// appending: a header of 100,000 tensors takes millions of puts, and
// std::string's append and push_back are calls into the library each.
class HeaderText {
 public:
  explicit HeaderText(std::size_t expected_bytes) : bytes_(expected_bytes, '\0') {}
  void put(std::string_view text) {
    std::memcpy(room(text.size()), text.data(), text.size());
    size_ += text.size();
  }
  void put(char c) {
    *room(1) = c;
    ++size_;
  }
  void put_plain(std::string_view text) { put(text); }
  void put_json(std::string_view text, std::string_view) { put(text); }
  // Digits from the last, where the count is known: std::to_chars did the
  // same, but <charconv> cost every program that includes ckpt.hpp 0.05 G
  // instructions to compile.
  void put_decimal(std::uint64_t value) {
    const std::size_t digits = decimal_digits(value);
    char* const out = room(digits);
    for (char* at = out + digits; at != out; value /= 10) *--at = char('0' + value % 10);
    size_ += digits;
  }
  void put_hex(std::uint64_t value) {
    write_checksum_hex(value, room(checksum_hex_digits));
    size_ += checksum_hex_digits;
  }
  // The text put so far.
  std::string take() && {
    bytes_.resize(size_);
    return std::move(bytes_);
  }

 private:
  // Where the next `bytes` go, the buffer grown if they do not fit. The
  // growth, which a save's sized buffer never needs, is a call of its own, so
  // that the puts stay small enough for the compiler to inline.
  char* room(std::size_t bytes) {
    if (bytes_.size() - size_ < bytes) grow(size_ + bytes);
    return &bytes_[size_];
  }
  void grow(std::size_t bytes) { bytes_.resize(std::max(bytes, 2 * bytes_.size())); }

  std::string bytes_;
  std::size_t size_ = 0;
};

// Counts the header's bytes without keeping them.
class HeaderSize {
 public:
  void put(std::string_view text) noexcept { bytes_ += text.size(); }
  void put(char) noexcept { ++bytes_; }
  void put_plain(std::string_view text) noexcept { bytes_ += text.size(); }
  void put_json(std::string_view text, std::string_view) noexcept { bytes_ += text.size(); }
  void put_decimal(std::uint64_t value) noexcept { bytes_ += decimal_digits(value); }
  void put_hex(std::uint64_t) noexcept { bytes_ += checksum_hex_digits; }
  std::uint64_t bytes() const noexcept { return bytes_; }

 private:
  std::uint64_t bytes_ = 0;
};

// Passes JSON text on as the contents of a JSON string (ckpt.tensors is the
// text of an object held in a __metadata__ string). JSON text holds no
// control characters, its strings escape them, so only '"' and '\\' need an
// escape; other bytes, UTF-8 included, stand for themselves as nlohmann
// writes them. Digits need none.
template <class Out>
class EscapedText {
 public:
  explicit EscapedText(Out& out) : out_(out) {}
  void put(std::string_view text) {
    std::size_t plain_from = 0;
    for (std::size_t at = 0; at < text.size(); ++at) {
      if (text[at] != '"' && text[at] != '\\') continue;
      out_.put(text.substr(plain_from, at - plain_from));
      out_.put('\\');
      plain_from = at;  // the special character itself starts the next run
    }
    out_.put(text.substr(plain_from));
  }
  void put(char c) {
    if (c == '"') return out_.put(std::string_view("\\\"", 2));
    if (c == '\\') return out_.put(std::string_view("\\\\", 2));
    out_.put(c);
  }
  void put_plain(std::string_view text) { out_.put_plain(text); }
  void put_json(std::string_view, std::string_view escaped) { out_.put(escaped); }
  void put_decimal(std::uint64_t value) { out_.put_decimal(value); }
  void put_hex(std::uint64_t value) { out_.put_hex(value); }

 private:
  Out& out_;
};

// A piece of JSON text of the format's own (docs/format.md), with its form
// escaped for a JSON string (ckpt.tensors), made at compile time: a tensor's
// two entries are put as a few pieces between their values, where putting
// them character by character, escaped one at a time, cost most of a header.
template <std::size_t N>
struct JsonPiece {
  char text[N] = {};
  char escaped[2 * N] = {};
  std::size_t escaped_size = 0;

  constexpr explicit JsonPiece(const char (&piece)[N]) {
    for (std::size_t i = 0; i + 1 < N; ++i) {
      text[i] = piece[i];
      if (piece[i] == '"' || piece[i] == '\\') escaped[escaped_size++] = '\\';
      escaped[escaped_size++] = piece[i];
    }
  }
};

template <class Out, std::size_t N>
void put_piece(Out& out, const JsonPiece<N>& piece) {
  out.put_json(std::string_view(piece.text, N - 1), std::string_view(piece.escaped, piece.escaped_size));
}

// A piece ending in a string's opening quote, the string, and a piece
// starting with its closing quote: text that needs no escape (keys, codec and
// dtype names) costs three puts, where quotes of their own cost two more.
namespace json_pieces {
inline constexpr JsonPiece first_key(R"(")");
inline constexpr JsonPiece next_key(R"(,")");
inline constexpr JsonPiece key_end(R"(":)");
inline constexpr JsonPiece codec(R"({"codec":")");
inline constexpr JsonPiece xxh3(R"(","xxh3":")");
inline constexpr JsonPiece dtype_after_checksum(R"(","dtype":")");
inline constexpr JsonPiece shape_after_dtype(R"(","shape":[)");
inline constexpr JsonPiece chunk_bytes(R"(],"chunk_bytes":)");
inline constexpr JsonPiece chunks(R"(,"chunks":[)");
inline constexpr JsonPiece raw_xxh3(R"(],"raw_xxh3":")");
inline constexpr JsonPiece blocks_after_checksum(R"(","blocks":[)");
inline constexpr JsonPiece block_bytes_after_checksum(R"(","block_bytes":)");
inline constexpr JsonPiece blocks(R"(,"blocks":[)");
inline constexpr JsonPiece first_checksum(R"(")");
inline constexpr JsonPiece next_checksum(R"(",")");
inline constexpr JsonPiece last_checksum(R"("]})");
inline constexpr JsonPiece no_checksum(R"(]})");
inline constexpr JsonPiece dtype(R"({"dtype":")");
inline constexpr JsonPiece data_offsets(R"(],"data_offsets":[)");
inline constexpr JsonPiece end_offsets(R"(]})");
}  // namespace json_pieces

// A string known to be printable ASCII other than '"' and '\\' as JSON text.
template <class Out>
void put_plain_string(Out& out, std::string_view text) {
  out.put('"');
  out.put_plain(text);
  out.put('"');
}

// A string as JSON text. Printable ASCII other than '"' and '\\' (most keys
// and values of a header) stands for itself; anything else is escaped by
// nlohmann, which throws its type_error when the string is not UTF-8.
template <class Out>
void put_json_string(Out& out, std::string_view text) {
  if (!plain_json_text(text)) return out.put(std::string_view(nlohmann::json(std::string(text)).dump()));
  put_plain_string(out, text);
}

// `before`, `text` as a JSON string and `after`, where `before` ends with the
// string's opening quote and `after` starts with its closing one.
template <class Out, std::size_t B, std::size_t A>
void put_string_between(Out& out, const JsonPiece<B>& before, std::string_view text, const JsonPiece<A>& after) {
  if (plain_json_text(text)) {
    put_piece(out, before);
    out.put_plain(text);
    return put_piece(out, after);
  }
  // The quotes come with the escaped string; escaped, a quote is two bytes.
  out.put_json(std::string_view(before.text, B - 2), std::string_view(before.escaped, before.escaped_size - 2));
  put_json_string(out, text);
  out.put_json(std::string_view(after.text + 1, A - 2), std::string_view(after.escaped + 2, after.escaped_size - 2));
}

// A streaming save reserves the header's space before it knows the numbers
// of encoded tensors and the offsets after the first of them: `widest`
// prints each such number at its widest, 20 digits (checksums are always 16
// hex digits), so every real value fits in the space it reserved.
inline constexpr std::uint64_t widest_number = ~std::uint64_t(0);

template <class Out>
void put_number(Out& out, std::uint64_t value) {
  out.put_decimal(value);
}

// The elements of a JSON array of numbers; the pieces around them hold the brackets.
template <class Out>
void put_numbers(Out& out, const std::vector<std::uint64_t>& values, bool widest = false) {
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out.put(',');
    put_number(out, widest ? widest_number : values[i]);
  }
}

// `"key":`, preceded by a comma unless it opens its object.
template <class Out>
void put_key(Out& out, std::string_view key, bool first = false) {
  if (first) return put_string_between(out, json_pieces::first_key, key, json_pieces::key_end);
  put_string_between(out, json_pieces::next_key, key, json_pieces::key_end);
}

// A tensor's entry in ckpt.tensors (docs/format.md, section 4).
template <class Out>
void put_tensor_info(Out& out, const TensorRecord& record, bool widest) {
  put_string_between(out, json_pieces::codec, record.codec, json_pieces::xxh3);
  out.put_hex(record.stored_xxh3);
  if (record.encoded()) {
    put_piece(out, json_pieces::dtype_after_checksum);
    out.put_plain(dtype_name(record.dtype));
    put_piece(out, json_pieces::shape_after_dtype);
    put_numbers(out, record.shape);
    put_piece(out, json_pieces::chunk_bytes);
    put_number(out, record.chunk_bytes);
    put_piece(out, json_pieces::chunks);
    put_numbers(out, record.chunk_sizes, widest);
    put_piece(out, json_pieces::raw_xxh3);
    out.put_hex(record.raw_xxh3);
    put_piece(out, json_pieces::blocks_after_checksum);
  } else {
    put_piece(out, json_pieces::block_bytes_after_checksum);
    put_number(out, record.block_bytes);
    put_piece(out, json_pieces::blocks);
  }
  // Each block's checksum as a string: "a","b",...
  if (record.block_xxh3.empty()) return put_piece(out, json_pieces::no_checksum);
  put_piece(out, json_pieces::first_checksum);
  for (std::size_t i = 0; i < record.block_xxh3.size(); ++i) {
    if (i != 0) put_piece(out, json_pieces::next_checksum);
    out.put_hex(record.block_xxh3[i]);
  }
  put_piece(out, json_pieces::last_checksum);
}

// A tensor's safetensors entry (docs/format.md, section 2).
template <class Out>
void put_tensor_entry(Out& out, const TensorRecord& record, bool widest_size, bool widest_offsets) {
  put_piece(out, json_pieces::dtype);
  out.put_plain(dtype_name(record.stored_dtype));
  put_piece(out, json_pieces::shape_after_dtype);
  put_numbers(out, record.entry_shape(), widest_size);
  put_piece(out, json_pieces::data_offsets);
  put_number(out, widest_offsets ? widest_number : record.begin);
  out.put(',');
  put_number(out, widest_offsets ? widest_number : record.end);
  put_piece(out, json_pieces::end_offsets);
}

// What an incremental save adds to a header (docs/format.md, section 8):
// members of __metadata__ after ckpt.tensors (key, JSON text to store as a
// string) and, for a file with references, a later format version.
struct HeaderExtras {
  int format_version = ckpt::format_version;
  std::vector<std::pair<std::string, std::string>> metadata;
};

// The JSON header, unpadded. With `reserve`, the numbers a streaming save
// learns while it writes (those of encoded tensors, and offsets from the
// first encoded tensor on) are printed at their widest.
template <class Out>
void put_header_json(Out& out, const std::vector<TensorRecord>& records, const std::string& user_metadata_json,
                     bool reserve, const HeaderExtras& extras) {
  out.put('{');
  put_key(out, metadata_key, true);
  out.put('{');
  put_key(out, keys::header_checksum, true);
  put_json_string(out, std::string(checksum_hex_digits, '0'));  // filled in once the header is complete
  put_key(out, keys::format);
  put_json_string(out, "pt");
  put_key(out, keys::format_version);
  put_json_string(out, std::to_string(extras.format_version));
  put_key(out, keys::user_metadata);
  put_json_string(out, user_metadata_json);
  put_key(out, keys::tensors);
  out.put('"');
  EscapedText<Out> infos(out);
  infos.put('{');
  for (std::size_t i = 0; i < records.size(); ++i) {
    put_key(infos, records[i].name, i == 0);
    put_tensor_info(infos, records[i], reserve && records[i].encoded());
  }
  infos.put('}');
  out.put('"');
  for (const auto& [key, json] : extras.metadata) {
    put_key(out, key);
    put_json_string(out, json);
  }
  out.put('}');
  bool offsets_known = true;  // raw tensors before the first encoded one have exact offsets when reserving
  for (const TensorRecord& record : records) {
    offsets_known = offsets_known && !record.encoded();
    put_key(out, record.name);
    put_tensor_entry(out, record, reserve && record.encoded(), reserve && !offsets_known);
  }
  out.put('}');
}

// The size of the bytes before the data buffer whose JSON takes `json_bytes`:
// 8 bytes of size, then the JSON padded with spaces to a multiple of
// data_alignment and to at least `reserved_bytes`.
inline std::uint64_t padded_header_bytes(std::uint64_t json_bytes, std::uint64_t reserved_bytes) {
  const std::uint64_t unpadded = 8 + json_bytes;
  const std::uint64_t aligned = unpadded + (data_alignment - unpadded % data_alignment) % data_alignment;
  return std::max(aligned, reserved_bytes);
}

inline void check_header_size(std::uint64_t bytes) {
  const std::uint64_t header_size = bytes - 8;
  if (header_size > max_header_bytes) {
    throw ArgumentError(ErrorId::argument_invalid, "", "",
                        join({"expected a header of at most ", max_header_bytes, " bytes, found ", header_size,
                              " (too many tensors or too much metadata)"}));
  }
}

// The bytes before the data buffer: N, the JSON header padded with spaces to
// a multiple of data_alignment (and to at least `reserved_bytes`, the space a
// streaming save set aside before it knew the numbers), with the header
// checksum filled in. `records` are in file order with offsets assigned.
// Throws nlohmann's type_error when a string is not UTF-8 (the writer checks
// names first).
template <class = void>
std::string build_header(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata,
                         std::uint64_t reserved_bytes = 0, const HeaderExtras& extras = {}) {
  HeaderText text(std::max<std::uint64_t>(reserved_bytes, 8));
  text.put(std::string_view("\0\0\0\0\0\0\0\0", 8));  // the size, stored once known
  put_header_json(text, records, user_metadata.dump(), false, extras);
  std::string bytes = std::move(text).take();
  const std::uint64_t total = padded_header_bytes(bytes.size() - 8, reserved_bytes);
  check_header_size(total);
  bytes.resize(total, ' ');
  store_le64(total - 8, bytes.data());
  const std::string checksum =
      checksum_to_hex(header_checksum(reinterpret_cast<const std::byte*>(bytes.data()), bytes.size()));
  bytes.replace(checksum_value_offset, checksum_hex_digits, checksum);
  return bytes;
}

// The size of the header a streaming save writes last, known before any of
// the numbers it learns while writing: counted, not built.
template <class = void>
std::uint64_t reserved_header_bytes(const std::vector<TensorRecord>& records, const nlohmann::json& user_metadata,
                                    const HeaderExtras& extras = {}) {
  HeaderSize size;
  put_header_json(size, records, user_metadata.dump(), true, extras);
  const std::uint64_t total = padded_header_bytes(size.bytes(), 0);
  check_header_size(total);
  return total;
}

}  // namespace ckpt::detail

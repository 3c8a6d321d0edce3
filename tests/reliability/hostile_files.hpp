#pragma once

// Files built to hurt a reader: lying sizes, absurd shapes, offsets outside
// the file or on top of each other, deep nesting, broken UTF-8, names that
// escape directories. Foreign safetensors files are built from the
// specification; ckpt files are built by the writer, edited, and their header
// checksum recomputed, because an attacker can do the same.

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/ckpt.hpp"
#include "safetensors_bytes.hpp"

namespace ckpt::test {

struct HostileFile {
  std::string what;
  Bytes bytes;
  std::set<ErrorId> expected;  // any of these ids is a correct refusal
};

// `{"t":ENTRY}` for one F32 tensor of shape `shape` at `offsets`.
inline std::string one_tensor_header(const std::string& shape, const std::string& offsets) {
  return R"({"t":{"dtype":"F32","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}";
}

inline std::string nested(const std::string& open, const std::string& close, std::size_t depth,
                          const std::string& inner = "0") {
  std::string text;
  text.reserve(depth * (open.size() + close.size()) + inner.size());
  for (std::size_t i = 0; i < depth; ++i) text += open;
  text += inner;
  for (std::size_t i = 0; i < depth; ++i) text += close;
  return text;
}

// A one-tensor safetensors file whose tensor is called `name` (JSON-escaped by the caller).
inline Bytes file_with_tensor_name(const std::string& escaped_name) {
  return container(R"({")" + escaped_name + R"(":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}})", Bytes(4));
}

inline std::vector<HostileFile> hostile_safetensors_files() {
  const std::size_t deep = 100000;  // far past any sane nesting, small enough to build quickly
  const Bytes four(4), twelve(12);
  const std::string two_tensors = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":)";
  // One hostile file per entry, laid out by hand.
  // clang-format off
  return {
      {"empty file", {}, {ErrorId::format_truncated}},
      {"3-byte file", Bytes(3), {ErrorId::format_truncated}},
      {"declared header of 2^63 bytes", container_declaring(std::uint64_t(1) << 63, "{}"),
       {ErrorId::format_header_size}},
      {"declared header of 100,000,001 bytes", container_declaring(100000001, "{}"), {ErrorId::format_header_size}},
      {"declared header past the end of the file", container_declaring(64, "{}"), {ErrorId::format_truncated}},
      {"declared header of 0 bytes", container_declaring(0, ""), {ErrorId::format_header_json}},
      {"shape overflowing 64 bits", container(one_tensor_header("[4294967296,4294967296,4294967296]", "[0,4]"), four),
       {ErrorId::format_byte_size}},
      {"huge shape with matching offsets past the end",
       container(one_tensor_header("[1099511627776]", "[0,4398046511104]"), four), {ErrorId::format_truncated}},
      {"offsets past the end", container(one_tensor_header("[2]", "[0,8]"), four), {ErrorId::format_truncated}},
      {"end offset before begin", container(one_tensor_header("[1]", "[8,4]"), twelve), {ErrorId::format_offsets}},
      {"offset beyond 2^64", container(one_tensor_header("[1]", "[18446744073709551616,4]"), four),
       {ErrorId::format_tensor_entry}},
      {"overlapping tensors", container(two_tensors + "[4,12]}}", twelve), {ErrorId::format_offsets}},
      {"two tensors on the same bytes", container(two_tensors + "[0,8]}}", Bytes(8)), {ErrorId::format_offsets}},
      {"gap between tensors", container(two_tensors + "[12,20]}}", Bytes(20)), {ErrorId::format_offsets}},
      {"bytes after the last tensor", container(one_tensor_header("[1]", "[0,4]"), Bytes(5)),
       {ErrorId::format_trailing_bytes}},
      {"deep nesting in a tensor entry", container(R"({"t":)" + nested("[", "]", deep) + "}"),
       {ErrorId::format_header_json}},
      {"deep nesting in __metadata__", container(R"({"__metadata__":)" + nested(R"({"a":)", "}", deep) + "}"),
       {ErrorId::format_header_json}},
      {"deep nesting at the top", container(nested("[", "]", deep)), {ErrorId::format_header_json}},
      {"deep nesting in a shape", container(one_tensor_header(nested("[", "]", deep, "1"), "[0,4]"), four),
       {ErrorId::format_header_json}},
      {"invalid UTF-8 in a name", file_with_tensor_name("w\xff\xfe"), {ErrorId::format_header_json}},
      {"overlong UTF-8 '/' in a name", file_with_tensor_name("a\xc0\xaf" "b"), {ErrorId::format_header_json}},
      {"lone surrogate escape in a name", file_with_tensor_name("a\\ud800b"), {ErrorId::format_header_json}},
      {"invalid UTF-8 in __metadata__", container("{\"__metadata__\":{\"k\":\"\xed\xa0\x80\"}}"),
       {ErrorId::format_header_json}},
      {"NUL in a name", file_with_tensor_name("a\\u0000b"), {ErrorId::format_tensor_entry}},
      {"empty name", file_with_tensor_name(""), {ErrorId::format_tensor_entry}},
      {"name '..'", file_with_tensor_name(".."), {ErrorId::format_tensor_entry}},
      {"name with '../'", file_with_tensor_name("../../etc/passwd"), {ErrorId::format_tensor_entry}},
      {"name with '/../'", file_with_tensor_name("model/../weights"), {ErrorId::format_tensor_entry}},
      {"name starting with '/'", file_with_tensor_name("/model/w"), {ErrorId::format_tensor_entry}},
      {"name ending with '/'", file_with_tensor_name("model/w/"), {ErrorId::format_tensor_entry}},
      {"non-string __metadata__ value", container(R"({"__metadata__":{"k":1}})"), {ErrorId::format_metadata}},
      {"unknown dtype", container(R"({"t":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", Bytes(16)),
       {ErrorId::format_tensor_entry}},
      {"negative offset", container(one_tensor_header("[1]", "[-4,0]"), four), {ErrorId::format_tensor_entry}},
      {"fractional offset", container(one_tensor_header("[1]", "[0.5,4.5]"), four), {ErrorId::format_tensor_entry}},
      {"negative extent", container(one_tensor_header("[-1]", "[0,4]"), four), {ErrorId::format_tensor_entry}},
      {"extra field in a tensor entry",
       container(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", four),
       {ErrorId::format_tensor_entry}},
      {"duplicate key", container(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                  R"("t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", Bytes(1)),
       {ErrorId::format_header_json}},
      {"header that is not JSON", container("hello, world"), {ErrorId::format_header_json}},
      {"header that is a JSON array", container("[1,2,3]"), {ErrorId::format_header_json}},
      {"header padded with NUL instead of spaces", container_declaring(8, std::string("{}\0\0\0\0\0\0", 8)),
       {ErrorId::format_header_json}},
  };
  // clang-format on
}

// A ckpt file holding `tensors` with the given codec, as the writer made it.
inline Bytes written_file(const std::string& path, const std::vector<NamedTensor>& tensors, const std::string& codec) {
  SaveOptions options;
  options.codecs = CodecPolicy(codec);
  write_checkpoint(path, tensors, nlohmann::json::object(), options);
  return read_file_bytes(path);
}

// Rebuilds a ckpt file around an edited header: pads it so the data stays
// aligned, and recomputes the header checksum as an attacker would.
inline Bytes resigned(const nlohmann::ordered_json& header, const Bytes& data) {
  std::string text = header.dump();
  text.append((detail::data_alignment - (8 + text.size()) % detail::data_alignment) % detail::data_alignment, ' ');
  Bytes file = container_declaring(text.size(), text, data);
  const std::string checksum = detail::checksum_to_hex(detail::header_checksum(file.data(), 8 + text.size()));
  for (std::size_t i = 0; i < checksum.size(); ++i) {
    file[detail::checksum_value_offset + i] = static_cast<std::byte>(checksum[i]);
  }
  return file;
}

// A ckpt file with its __metadata__ edited by `edit`, re-signed.
template <class Edit>
Bytes with_edited_metadata(const Bytes& file, Edit edit) {
  const std::uint64_t data_start = 8 + read_u64_le(file);
  const std::string text(reinterpret_cast<const char*>(file.data()) + 8, data_start - 8);
  nlohmann::ordered_json header = nlohmann::ordered_json::parse(text);
  edit(header["__metadata__"]);
  return resigned(header, Bytes(file.begin() + static_cast<std::ptrdiff_t>(data_start), file.end()));
}

// A ckpt file with the ckpt.tensors entry of its tensor "t" edited by `edit`, re-signed.
template <class Edit>
Bytes with_edited_tensor_info(const Bytes& file, Edit edit) {
  return with_edited_metadata(file, [&](nlohmann::ordered_json& metadata) {
    nlohmann::ordered_json infos = nlohmann::ordered_json::parse(metadata["ckpt.tensors"].template get<std::string>());
    edit(infos["t"]);
    metadata["ckpt.tensors"] = infos.dump();
  });
}

// ckpt files whose header checksum is right but whose content lies; `scratch`
// is a path the writer may use.
inline std::vector<HostileFile> hostile_ckpt_files(const std::string& scratch) {
  const std::vector<float> zeros(256, 0.0f);
  const Bytes compressed = written_file(scratch, {{"t", TensorView(zeros.data(), {256})}}, "zstd");
  const auto edit = [&](auto change) { return with_edited_tensor_info(compressed, change); };
  const std::uint64_t tib = std::uint64_t(1) << 40;
  // One hostile file per entry, laid out by hand.
  // clang-format off
  return {
      {"compressed tensor declaring 4 TiB of values",
       edit([&](auto& info) {
         info["shape"] = {tib};
         info["chunk_bytes"] = 4 * tib;
       }),
       {ErrorId::format_metadata}},
      {"compressed tensor declaring 4 TiB in 4096 chunks of 1 GiB",
       edit([&](auto& info) {
         std::vector<std::uint64_t> chunks(4096, 0);
         chunks[0] = info["chunks"][0].template get<std::uint64_t>();
         info["shape"] = {tib};
         info["chunk_bytes"] = std::uint64_t(1) << 30;
         info["chunks"] = chunks;
       }),
       {ErrorId::format_metadata}},
      {"compressed tensor declaring 256 MiB from a 1 KiB stream",
       edit([&](auto& info) {
         info["shape"] = {std::uint64_t(1) << 26};
         info["chunk_bytes"] = std::uint64_t(1) << 28;
       }),
       {ErrorId::format_metadata}},
      {"compressed tensor declaring 2^40 chunks",
       edit([&](auto& info) {
         info["shape"] = {tib};
         info["chunk_bytes"] = 4;
       }),
       {ErrorId::format_metadata}},
      {"chunk sizes that split the stored bytes wrongly",
       edit([&](auto& info) {
         const std::uint64_t total = info["chunks"][0].template get<std::uint64_t>();
         info["chunk_bytes"] = 512;
         info["chunks"] = {total - 3, 3};
         // Format v2: block checksums that match the new split, so the
         // decoder, not the checksum, meets the lie.
         const std::byte* stored = compressed.data() + compressed.size() - total;
         info["blocks"] = {ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(stored, total - 3)),
                           ckpt::detail::checksum_to_hex(ckpt::detail::xxh3(stored + total - 3, 3))};
       }),
       {ErrorId::codec_decode}},
      {"unknown codec", edit([&](auto& info) { info["codec"] = "lz4"; }), {ErrorId::codec_unknown}},
      {"decoded checksum that does not match",
       edit([&](auto& info) { info["raw_xxh3"] = "0123456789abcdef"; }),
       {ErrorId::integrity_tensor_checksum}},
      {"deep nesting in ckpt.tensors",
       edit([&](auto& info) { info["shape"] = nlohmann::ordered_json::parse(nested("[", "]", 1000, "1")); }),
       {ErrorId::format_metadata}},
      {"deep nesting in the user metadata",
       with_edited_metadata(compressed,
                            [&](auto& metadata) { metadata["ckpt.metadata"] = nested(R"({"a":)", "}", 100000); }),
       {ErrorId::format_metadata}},
  };
  // clang-format on
}

}  // namespace ckpt::test

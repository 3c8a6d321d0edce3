// model.safetensors.index.json: Hugging Face's shape, ckpt's records inside,
// and a strict reader that refuses what a damaged or hand-edited index says.

#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ckpt/distributed.hpp"
#include "support/expect_error.hpp"

namespace ckpt::detail {
namespace {

CheckpointIndex sample_index() {
  CheckpointIndex index;
  index.step = 300;
  index.world_size = 2;
  index.total_size = 64 + 32;
  index.files["model-00001-of-00002.safetensors"] = {4096, 0x0123456789abcdefull};
  index.files["model-00002-of-00002.safetensors"] = {2048, 0xfedcba9876543210ull};
  IndexTensor w{DType::F32, {4, 4}, {}};
  w.pieces.push_back({PieceGeometry::box({0, 0}, {2, 4}), "model-00001-of-00002.safetensors", "w#0", "raw", 1, {}, {}});
  w.pieces.push_back({PieceGeometry::flat(8, 8), "model-00002-of-00002.safetensors", "w#1", "zstd", 2, 3, {}});
  index.tensors["w"] = w;
  IndexTensor b{DType::BF16, {16}, {}};
  b.pieces.push_back({PieceGeometry::whole({16}), "model-00002-of-00002.safetensors", "b", "raw", 4, {}, {}});
  index.tensors["b"] = b;
  index.metadata = {{"step", 300}, {"note", "x"}};
  return index;
}

TEST(Index, HasHuggingFacesShapeWithCkptRecordsInsideMetadata) {
  const nlohmann::json json = nlohmann::json::parse(index_to_json(sample_index()));
  EXPECT_EQ(json.size(), 2u) << "only metadata and weight_map at the top";
  EXPECT_EQ(json["metadata"]["total_size"], 96);
  EXPECT_EQ(json["weight_map"]["b"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(json["weight_map"]["w#0"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(json["metadata"]["ckpt.step"], 300);
  EXPECT_EQ(json["metadata"]["ckpt.world_size"], 2);
  EXPECT_EQ(json["metadata"]["ckpt.format_version"], 1);
  const nlohmann::json& w = json["metadata"]["ckpt.tensors"]["w"];
  EXPECT_EQ(w["shape"], (nlohmann::json{4, 4}));
  EXPECT_EQ(w["pieces"][0]["offsets"], (nlohmann::json{0, 0}));
  EXPECT_EQ(w["pieces"][0]["extents"], (nlohmann::json{2, 4}));
  EXPECT_EQ(w["pieces"][1]["flat"], (nlohmann::json{8, 16}));
  EXPECT_EQ(w["pieces"][1]["raw_xxh3"], "0000000000000003");
  EXPECT_EQ(json["metadata"]["ckpt.files"]["model-00001-of-00002.safetensors"]["header_xxh3"], "0123456789abcdef");
}

TEST(Index, ReadsBackWhatItWrote) {
  const CheckpointIndex original = sample_index();
  const CheckpointIndex read = IndexParser("i.json").parse(index_to_json(original));
  EXPECT_EQ(read.step, 300u);
  EXPECT_EQ(read.world_size, 2u);
  EXPECT_EQ(read.files.at("model-00002-of-00002.safetensors").header_xxh3, 0xfedcba9876543210ull);
  ASSERT_EQ(read.tensors.at("w").pieces.size(), 2u);
  EXPECT_EQ(read.tensors.at("w").pieces[1].geometry, PieceGeometry::flat(8, 8));
  EXPECT_EQ(read.tensors.at("w").pieces[1].raw_xxh3, 3u);
  EXPECT_EQ(read.tensors.at("b").dtype, DType::BF16);
  EXPECT_EQ(read.metadata, original.metadata);
}

// Applies `edit` to the sample index's JSON and expects the parser to refuse it.
template <class Edit>
void expect_refused(Edit&& edit, ErrorId id, const std::string& text) {
  nlohmann::json json = nlohmann::json::parse(index_to_json(sample_index()));
  edit(json);
  const auto error = test::expect_error<FormatError>(
      [&] { IndexParser("run/model.safetensors.index.json").parse(json.dump()); }, id, {text});
  if (!error) return;
  EXPECT_EQ(error->file(), "run/model.safetensors.index.json");
}

TEST(Index, RefusesDamagedOrInconsistentIndices) {
  using nlohmann::json;
  expect_refused([](json& j) { j["metadata"]["ckpt.format_version"] = 3; }, ErrorId::format_newer_version,
                 "expected an index of format version 2 or older, found version 3: written by a newer ckpt");
  // Incremental checkpoints (docs/distributed.md, section 6): a chain needs version 2.
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.chain"] = {
            {"parent", "../a"}, {"depth", 1}, {"chain_bytes", 0}, {"sources", json::array()}};
      },
      ErrorId::format_metadata,
      "expected ckpt.chain, in an index of version 2, to be an object of exactly "
      "parent, depth, chain_bytes and sources, found");
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.format_version"] = 2;
        j["metadata"]["ckpt.chain"] = {
            {"parent", "/abs"}, {"depth", 1}, {"chain_bytes", 0}, {"sources", json::array()}};
      },
      ErrorId::format_metadata, "expected ckpt.chain to name directories by relative names, found \"/abs\"");
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.format_version"] = 2;
        j["metadata"]["ckpt.tensors"]["w"]["pieces"][0]["codec"] = "reference";
        j["metadata"]["ckpt.tensors"]["w"]["pieces"][0]["xxh128"] = "123";
      },
      ErrorId::format_metadata, "expected a referenced piece's 'xxh128' to be 32 lowercase hexadecimal digits");
  expect_refused([](json& j) { j["metadata"].erase("ckpt.format_version"); }, ErrorId::format_metadata,
                 "not written by ckpt");
  expect_refused([](json& j) { j["metadata"]["ckpt.tensors"]["w"]["pieces"].erase(1); }, ErrorId::format_metadata,
                 "the pieces do not tile [4, 4]: elements [2, 0] to [3, 3] are held by no piece");
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.tensors"]["w"]["pieces"][0]["extents"] = {3, 4};
      },
      ErrorId::format_metadata, "both hold element [2, 0]");
  expect_refused([](json& j) { j["metadata"]["ckpt.tensors"]["w"]["pieces"][0]["file"] = "../etc/passwd"; },
                 ErrorId::format_metadata, "which ckpt.files lacks");
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.files"]["../x"] = {{"bytes", 1}, {"header_xxh3", "0000000000000000"}};
      },
      ErrorId::format_metadata, "expected file names without '/'");
  expect_refused([](json& j) { j["weight_map"]["w#0"] = "model-00002-of-00002.safetensors"; }, ErrorId::format_metadata,
                 "expected weight_map to map 'w#0' to 'model-00001-of-00002.safetensors'");
  expect_refused([](json& j) { j["weight_map"]["stray"] = "model-00002-of-00002.safetensors"; },
                 ErrorId::format_metadata, "expected every weight_map entry to be a piece");
  expect_refused([](json& j) { j["metadata"]["ckpt.tensors"]["b"]["dtype"] = "F128"; }, ErrorId::format_metadata,
                 "expected dtype to be one of");
  expect_refused([](json& j) { j["metadata"]["ckpt.tensors"]["b"]["pieces"][0]["xxh3"] = "XYZ"; },
                 ErrorId::format_metadata, "16 lowercase hexadecimal digits");
  expect_refused(
      [](json& j) {
        j["metadata"]["ckpt.tensors"]["w"]["pieces"][1]["flat"] = {16, 8};
      },
      ErrorId::format_metadata, "BEGIN <= END");
  expect_refused([](json& j) { j = json::array(); }, ErrorId::format_metadata, "expected a JSON object");
}

TEST(Index, RefusesPiecesOfTooManyRunsBeforeEnumeratingThem) {
  // Two columns of 10^12 rows: 2 * 10^12 runs in a few bytes of index, which
  // enumerating would need tens of terabytes for.
  expect_refused(
      [](nlohmann::json& j) {
        nlohmann::json& w = j["metadata"]["ckpt.tensors"]["w"];
        w["shape"] = {1'000'000'000'000, 4};
        w["pieces"][0]["extents"] = {1'000'000'000'000, 2};
        w["pieces"][1].erase("flat");
        w["pieces"][1]["offsets"] = {0, 2};
        w["pieces"][1]["extents"] = {1'000'000'000'000, 2};
      },
      ErrorId::format_metadata,
      "[ckpt.format_error.208] file 'run/model.safetensors.index.json': tensor 'w': expected the pieces to form at "
      "most 4194304 runs of consecutive elements (a box forms one per row it does not span whole), found "
      "2000000000000");
}

TEST(Index, RefusesTextThatIsNotJson) {
  test::expect_error<FormatError>([] { IndexParser("i.json").parse("{\"metadata\": "); }, ErrorId::format_header_json,
                                  {"file 'i.json': expected the index to be JSON: "});
}

}  // namespace
}  // namespace ckpt::detail

// Incremental checkpoints (docs/format.md, section 8): a save given a parent
// references the tensors the parent holds instead of writing them, loading
// follows the references across the chain, and a damaged, replaced or
// missing file of the chain fails the load naming that file.

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckpt/ckpt.hpp"
#include "format/format_test_support.hpp"
#include "support/expect_error.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::expect_error;
using ckpt::test::TempDir;

// Named float tensors, each of its own shape, as a save takes them.
struct Tensors {
  std::map<std::string, std::vector<float>> values;
  std::map<std::string, ckpt::Shape> shapes;

  void set(const std::string& name, ckpt::Shape shape, float seed) {
    std::uint64_t count = 1;
    for (std::uint64_t extent : shape) count *= extent;
    std::vector<float>& data = values[name];
    data.resize(count);
    for (std::uint64_t i = 0; i < count; ++i) data[i] = seed + 0.5f * float(i % 1000) + float(i / 1000);
    shapes[name] = std::move(shape);
  }

  std::vector<ckpt::NamedTensor> named() const {
    std::vector<ckpt::NamedTensor> out;
    for (const auto& [name, data] : values) out.push_back({name, ckpt::TensorView(data.data(), shapes.at(name))});
    return out;
  }
};

ckpt::SaveOptions incremental_from(const std::string& parent, std::size_t full_every = 100) {
  ckpt::SaveOptions options;
  options.incremental.parent = parent;
  options.incremental.content_hashes = true;
  options.incremental.full_every = full_every;
  options.incremental.max_chain_fraction = 1e9;  // only full_every decides
  return options;
}

ckpt::SaveOptions hashed() { return incremental_from(""); }

// Every tensor of `expected` reads back from `path` bit for bit, and nothing else is there.
void expect_restores(const std::string& path, const Tensors& expected) {
  const ckpt::Reader reader(path);
  ASSERT_EQ(reader.tensors().size(), expected.values.size()) << path;
  for (const auto& [name, data] : expected.values) {
    const ckpt::TensorInfo* info = reader.find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->shape, expected.shapes.at(name)) << name;
    std::vector<float> read(data.size());
    reader.read_into(name, read.data(), read.size() * sizeof(float));
    EXPECT_EQ(std::memcmp(read.data(), data.data(), data.size() * sizeof(float)), 0) << name;
    const ckpt::Tensor tensor = reader.tensor(name);
    EXPECT_EQ(std::memcmp(tensor.data(), data.data(), data.size() * sizeof(float)), 0) << name;
  }
  reader.verify();
}

TEST(Incremental, UnchangedTensorsAreReferencedNotWritten) {
  TempDir dir;
  Tensors state;
  state.set("frozen/a", {256, 256}, 1);
  state.set("frozen/b", {300}, 2);
  state.set("trained", {64, 64}, 3);
  const ckpt::SaveStats full = ckpt::write_checkpoint(dir.file("0.safetensors"), state.named(), nullptr, hashed());
  EXPECT_EQ(full.referenced_bytes, 0u);

  state.set("trained", {64, 64}, 4);
  const ckpt::SaveStats child = ckpt::write_checkpoint(dir.file("1.safetensors"), state.named(), nullptr,
                                                       incremental_from(dir.file("0.safetensors")));
  EXPECT_EQ(child.referenced_bytes, (256u * 256u + 300u) * 4u);
  EXPECT_LT(child.file_bytes, 64u * 64u * 4u + 4096u);

  const ckpt::Reader reader(dir.file("1.safetensors"));
  EXPECT_EQ(reader.format_version(), 3);
  EXPECT_EQ(reader.parent_file(), "0.safetensors");
  EXPECT_EQ(reader.chain_depth(), 1u);
  EXPECT_EQ(reader.source_files(), std::vector<std::string>{"0.safetensors"});
  EXPECT_EQ(reader.find("frozen/a")->stored_in, "0.safetensors");
  EXPECT_EQ(reader.find("frozen/a")->codec, "reference");
  EXPECT_EQ(reader.find("trained")->stored_in, "");
  expect_restores(dir.file("1.safetensors"), state);
}

// The child stays a safetensors file for what it stores itself: its header
// lists the stored tensors only, and the chain lives in __metadata__.
TEST(Incremental, ChildIsSafetensorsForItsOwnTensors) {
  TempDir dir;
  Tensors state;
  state.set("frozen", {1000}, 1);
  state.set("trained", {10}, 3);
  ckpt::write_checkpoint(dir.file("0.safetensors"), state.named(), nullptr, hashed());
  state.set("trained", {10}, 5);
  ckpt::write_checkpoint(dir.file("1.safetensors"), state.named(), nullptr,
                         incremental_from(dir.file("0.safetensors")));

  const std::string bytes = ckpt_format_test::read_file(dir.file("1.safetensors"));
  const std::uint64_t size = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data()));
  const nlohmann::json header = nlohmann::json::parse(bytes.substr(8, size));
  EXPECT_EQ(header.size(), 2u);  // __metadata__ and trained
  EXPECT_TRUE(header.contains("trained"));
  EXPECT_EQ(header["trained"]["data_offsets"], nlohmann::json::array({0, 40}));
  EXPECT_EQ(header["__metadata__"]["ckpt.format_version"], "3");
  const nlohmann::json chain = nlohmann::json::parse(header["__metadata__"]["ckpt.chain"].get<std::string>());
  EXPECT_EQ(chain["parent"]["file"], "0.safetensors");
  EXPECT_EQ(chain["depth"], 1);
  EXPECT_EQ(chain["chain_bytes"], 40);
  EXPECT_EQ(chain["references"]["frozen"]["tensor"], "frozen");
  EXPECT_EQ(chain["references"]["frozen"]["source"], 0);
  EXPECT_EQ(chain["references"]["frozen"]["xxh128"].get<std::string>().size(), 32u);
  EXPECT_EQ(bytes.size(), 8 + size + 40);
}

// A save against a parent writes the tensors whose first block shows they
// changed while it hashes the rest (writer.hpp, write_while_hashing), the
// others it stores after; whatever it wrote first, the child is valid:
// every tensor restores bit for bit, the data offsets tile the buffer in
// header order, each raw tensor sits on a multiple of its element size, and
// the same state saved twice against the same parent gives the same bytes.
// Covered: tensors changed in their first block (one of the same shape as a
// frozen one), changed after it, of a shape the parent has not, of odd sizes
// and of element sizes above and below the frozen ones', raw and encoded.
TEST(Incremental, ChangedTensorsWrittenWhileHashingMakeAValidChild) {
  for (const char* codecs : {"raw", "shuffle+zstd"}) {
    SCOPED_TRACE(codecs);
    TempDir dir;
    const auto fill = [](auto& values, int seed) {
      for (std::size_t i = 0; i < values.size(); ++i) {
        values[i] = static_cast<std::decay_t<decltype(values[0])>>(i * 7 + std::size_t(seed));
      }
    };
    std::vector<double> trained64(1u << 16);
    std::vector<float> frozen32(1u << 16), trained32(1u << 16), late32(1u << 16);
    std::vector<std::uint8_t> trained8(300001);
    std::vector<std::int16_t> new16(70001);
    fill(trained64, 1);
    fill(frozen32, 2);
    fill(trained32, 3);
    fill(late32, 4);
    fill(trained8, 5);
    fill(new16, 6);
    const auto named = [&](bool with_new) {
      std::vector<ckpt::NamedTensor> tensors = {{"trained64", ckpt::TensorView(trained64.data(), {1u << 16})},
                                                {"frozen32", ckpt::TensorView(frozen32.data(), {256, 256})},
                                                {"trained32", ckpt::TensorView(trained32.data(), {256, 256})},
                                                {"late32", ckpt::TensorView(late32.data(), {256, 256})},
                                                {"trained8", ckpt::TensorView(trained8.data(), {300001})}};
      if (with_new) tensors.push_back({"new16", ckpt::TensorView(new16.data(), {70001})});
      return tensors;
    };
    ckpt::SaveOptions parent_options = hashed();
    parent_options.codecs = codecs;
    parent_options.chunk_bytes = 64 << 10;
    ckpt::write_checkpoint(dir.file("0.safetensors"), named(false), nullptr, parent_options);

    fill(trained64, 11);
    fill(trained32, 13);
    fill(trained8, 15);
    late32.back() += 1;  // the same first block as in the parent
    ckpt::SaveOptions child_options = incremental_from(dir.file("0.safetensors"));
    child_options.codecs = codecs;
    child_options.chunk_bytes = 64 << 10;
    const ckpt::SaveStats stats =
        ckpt::write_checkpoint(dir.file("1.safetensors"), named(true), nullptr, child_options);
    ckpt::write_checkpoint(dir.file("again.safetensors"), named(true), nullptr, child_options);
    EXPECT_EQ(stats.referenced_bytes, frozen32.size() * 4);

    const ckpt::Reader reader(dir.file("1.safetensors"));
    for (const ckpt::NamedTensor& tensor : named(true)) {
      const ckpt::Tensor read = reader.tensor(tensor.name);
      ASSERT_EQ(read.nbytes(), tensor.view.nbytes()) << tensor.name;
      EXPECT_EQ(std::memcmp(read.data(), tensor.view.data(), read.nbytes()), 0) << tensor.name;
    }
    reader.verify();
    EXPECT_EQ(reader.find("frozen32")->codec, "reference");
    EXPECT_EQ(reader.find("late32")->stored_in, "");

    const std::string bytes = ckpt_format_test::read_file(dir.file("1.safetensors"));
    EXPECT_EQ(bytes, ckpt_format_test::read_file(dir.file("again.safetensors")));
    const std::uint64_t size = ckpt::detail::load_le64(reinterpret_cast<const std::byte*>(bytes.data()));
    const nlohmann::ordered_json header = nlohmann::ordered_json::parse(bytes.substr(8, size));
    const std::map<std::string, std::uint64_t> element_sizes = {{"F64", 8}, {"F32", 4}, {"I16", 2}, {"U8", 1}};
    std::uint64_t end = 0;
    for (const auto& [name, entry] : header.items()) {
      if (name == "__metadata__") continue;
      const std::uint64_t begin = entry["data_offsets"][0];
      EXPECT_EQ(begin, end) << name;
      EXPECT_EQ(begin % element_sizes.at(entry["dtype"]), 0u) << name;
      end = entry["data_offsets"][1];
    }
    EXPECT_EQ(8 + size + end, bytes.size());
  }
}

// Frozen, partly changed, fully changed, renamed, reshaped, new and removed
// tensors over a chain of 10 saves: every file restores its own state bit
// for bit, and references always point at a file that stores the bytes.
TEST(Incremental, ChainOfTenRestoresEverySaveBitExact) {
  TempDir dir;
  Tensors state;
  state.set("embedding", {512, 64}, 1);
  state.set("frozen", {128, 128}, 2);
  state.set("head", {64, 10}, 3);
  state.set("renamed/0", {1000}, 4);
  state.set("reshaped", {20, 50}, 5);
  std::vector<Tensors> saved;
  std::string parent;
  for (int step = 0; step < 10; ++step) {
    if (step > 0) {
      state.values["embedding"][std::size_t(step) * 64] += 1.0f;  // one row changes
      state.set("head", {64, 10}, 100.0f + float(step));          // everything changes
      auto renamed = state.values.extract("renamed/" + std::to_string(step - 1));
      renamed.key() = "renamed/" + std::to_string(step);
      state.values.insert(std::move(renamed));
      state.shapes["renamed/" + std::to_string(step)] = {1000};
      state.shapes.erase("renamed/" + std::to_string(step - 1));
      state.shapes["reshaped"] = step % 2 ? ckpt::Shape{50, 20} : ckpt::Shape{20, 50};
      state.set("new/" + std::to_string(step), {7}, float(step));
      if (step > 2) {
        state.values.erase("new/" + std::to_string(step - 2));
        state.shapes.erase("new/" + std::to_string(step - 2));
      }
    }
    const std::string path = dir.file(std::to_string(step) + ".safetensors");
    ckpt::write_checkpoint(path, state.named(), nullptr, step == 0 ? hashed() : incremental_from(parent));
    saved.push_back(state);
    parent = path;
  }
  for (int step = 0; step < 10; ++step) {
    SCOPED_TRACE(step);
    const std::string path = dir.file(std::to_string(step) + ".safetensors");
    expect_restores(path, saved[std::size_t(step)]);
    const ckpt::Reader reader(path);
    EXPECT_EQ(reader.chain_depth(), std::uint64_t(step));
    if (step == 0) continue;
    // Unchanged since the first save, whatever the chain's length: stored there.
    EXPECT_EQ(reader.find("frozen")->stored_in, "0.safetensors");
    EXPECT_EQ(reader.find("renamed/" + std::to_string(step))->stored_in, "0.safetensors");
    EXPECT_EQ(reader.find("embedding")->stored_in, "");
    EXPECT_EQ(reader.find("head")->stored_in, "");
    // The same bytes in another shape than the parent's are stored again.
    EXPECT_EQ(reader.find("reshaped")->stored_in, "");
  }
}

// Checkpoint<State>::load follows the chain like the Reader.
struct Model {
  std::vector<float> frozen;
  std::vector<float> trained;
  std::uint64_t step = 0;
  template <class Archive>
  void describe(Archive& ar) {
    ar("frozen", frozen);
    ar("trained", trained);
    ar("step", step);
  }
};

TEST(Incremental, CheckpointLoadFollowsTheChain) {
  TempDir dir;
  Model model;
  model.frozen.assign(10000, 0.5f);
  model.trained.assign(100, 1.0f);
  ckpt::Checkpoint<Model>(hashed()).save(dir.file("0.safetensors"), model);
  std::string parent = dir.file("0.safetensors");
  for (int step = 1; step < 10; ++step) {
    model.trained[std::size_t(step)] = float(step) + 0.5f;
    model.step = std::uint64_t(step);
    const std::string path = dir.file(std::to_string(step) + ".safetensors");
    const ckpt::SaveStats stats = ckpt::Checkpoint<Model>(incremental_from(parent)).save(path, model);
    EXPECT_EQ(stats.referenced_bytes, 40000u);
    parent = path;
  }
  Model loaded;
  ckpt::Checkpoint<Model>().load(parent, loaded);
  EXPECT_EQ(loaded.frozen, model.frozen);
  EXPECT_EQ(loaded.trained, model.trained);
  EXPECT_EQ(loaded.step, 9u);
}

// Chain policy: a full save every `full_every` saves, and when the chain's
// incremental files would store more than max_chain_fraction of the state.
TEST(Incremental, ChainPolicyStartsAFullSave) {
  TempDir dir;
  Tensors state;
  state.set("frozen", {1000}, 1);
  state.set("trained", {100}, 2);
  std::vector<std::uint64_t> depths;
  std::string parent;
  for (int step = 0; step < 7; ++step) {
    state.set("trained", {100}, float(step));
    const std::string path = dir.file(std::to_string(step) + ".safetensors");
    ckpt::write_checkpoint(path, state.named(), nullptr, step == 0 ? hashed() : incremental_from(parent, 3));
    depths.push_back(ckpt::Reader(path).chain_depth());
    parent = path;
  }
  EXPECT_EQ(depths, (std::vector<std::uint64_t>{0, 1, 2, 0, 1, 2, 0}));

  // Each incremental save stores 100 of 1100 floats: with a fraction of 0.25
  // the third would bring the chain to 300 > 275.
  depths.clear();
  for (int step = 0; step < 5; ++step) {
    state.set("trained", {100}, 50.0f + float(step));
    const std::string path = dir.file("f" + std::to_string(step) + ".safetensors");
    ckpt::SaveOptions options = step == 0 ? hashed() : incremental_from(parent);
    options.incremental.max_chain_fraction = 0.25;
    ckpt::write_checkpoint(path, state.named(), nullptr, options);
    depths.push_back(ckpt::Reader(path).chain_depth());
    parent = path;
  }
  EXPECT_EQ(depths, (std::vector<std::uint64_t>{0, 1, 2, 0, 1}));
  expect_restores(parent, state);
}

// A parent saved without content hashes offers nothing to reference: the
// save is a full one.
TEST(Incremental, ParentWithoutHashesGivesAFullSave) {
  TempDir dir;
  Tensors state;
  state.set("frozen", {1000}, 1);
  ckpt::write_checkpoint(dir.file("0.safetensors"), state.named(), nullptr);
  const ckpt::SaveStats stats = ckpt::write_checkpoint(dir.file("1.safetensors"), state.named(), nullptr,
                                                       incremental_from(dir.file("0.safetensors")));
  EXPECT_EQ(stats.referenced_bytes, 0u);
  const ckpt::Reader reader(dir.file("1.safetensors"));
  EXPECT_EQ(reader.chain_depth(), 0u);
  EXPECT_EQ(reader.format_version(), 2);
}

TEST(Incremental, SavingOverTheParentIsRefused) {
  TempDir dir;
  Tensors state;
  state.set("frozen", {10}, 1);
  const std::string path = dir.file("0.safetensors");
  ckpt::write_checkpoint(path, state.named(), nullptr, hashed());
  expect_error<ckpt::ArgumentError>(
      [&] { ckpt::write_checkpoint(path, state.named(), nullptr, incremental_from(path)); },
      ckpt::ErrorId::argument_invalid, {path, "expected a parent checkpoint other than"});
}

// A chain of three: 0 stores "frozen", 2 references it through 1.
struct ThreeFileChain {
  TempDir dir;
  Tensors state;
  std::string first = dir.file("0.safetensors");
  std::string last = dir.file("2.safetensors");
  ThreeFileChain() {
    state.set("frozen", {4096}, 1);
    state.set("trained", {16}, 2);
    ckpt::write_checkpoint(first, state.named(), nullptr, hashed());
    for (int step = 1; step <= 2; ++step) {
      state.set("trained", {16}, 2.0f + float(step));
      ckpt::write_checkpoint(dir.file(std::to_string(step) + ".safetensors"), state.named(), nullptr,
                             incremental_from(dir.file(std::to_string(step - 1) + ".safetensors")));
    }
  }
  void load_last() const {
    const ckpt::Reader reader(last);
    std::vector<float> frozen(4096);
    reader.read_into("frozen", frozen.data(), frozen.size() * 4);
  }
};

TEST(Incremental, CorruptedParentDataFailsTheLoadNamingIt) {
  ThreeFileChain chain;
  std::string bytes = ckpt_format_test::read_file(chain.first);
  bytes[bytes.size() - 100] ^= 0x01;  // in "frozen": stored before the 64 bytes of "trained" (same size, by name)
  ckpt_format_test::write_file(chain.first, bytes);
  const ckpt::Reader probe(chain.first, {false, 0});
  const ckpt::TensorInfo* frozen = probe.find("frozen");
  ASSERT_LT(bytes.size() - 100, frozen->file_offset + frozen->stored_bytes);
  expect_error<ckpt::IntegrityError>([&] { chain.load_last(); }, ckpt::ErrorId::integrity_tensor_checksum,
                                     {"file '" + chain.first + "'", "tensor 'frozen'", "checksum mismatch in block"});
  expect_error<ckpt::IntegrityError>([&] { ckpt::Reader(chain.last).verify(); },
                                     ckpt::ErrorId::integrity_tensor_checksum,
                                     {"file '" + chain.first + "'", "tensor 'frozen'"});
}

TEST(Incremental, CorruptedParentHeaderFailsTheLoadNamingIt) {
  ThreeFileChain chain;
  std::string bytes = ckpt_format_test::read_file(chain.first);
  bytes[100] ^= 0x01;
  ckpt_format_test::write_file(chain.first, bytes);
  expect_error<ckpt::IntegrityError>([&] { chain.load_last(); }, ckpt::ErrorId::integrity_header_checksum,
                                     {"file '" + chain.first + "'", "header checksum mismatch"});
}

// A valid checkpoint in the parent's place is not the parent.
TEST(Incremental, ReplacedParentFailsTheLoadNamingIt) {
  ThreeFileChain chain;
  Tensors other = chain.state;
  other.set("trained", {16}, 99);
  ckpt::write_checkpoint(chain.first, other.named(), nullptr, hashed());
  expect_error<ckpt::IntegrityError>([&] { chain.load_last(); }, ckpt::ErrorId::integrity_reference,
                                     {"file '" + chain.first + "'", "expected the file '" + chain.last + "' references",
                                      "found header xxh3", "replaced or rewritten"});
}

TEST(Incremental, MissingParentFailsTheLoadNamingIt) {
  ThreeFileChain chain;
  std::filesystem::remove(chain.first);
  expect_error<ckpt::IoError>([&] { chain.load_last(); }, ckpt::ErrorId::io_open, {"file '" + chain.first + "'"});
  // The tensors the child stores itself stay readable.
  const ckpt::Reader reader(chain.last);
  EXPECT_EQ(reader.tensor("trained").shape(), ckpt::Shape{16});
}

TEST(Incremental, HostileChainMetadataIsRefused) {
  ThreeFileChain chain;
  using ckpt_format_test::rewrite_header;
  using ckpt_format_test::rewrite_metadata_json;
  const std::string path = chain.last;
  rewrite_metadata_json(path, "ckpt.chain",
                        [](nlohmann::ordered_json& json) { json["references"]["frozen"]["source"] = 5; });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"tensor 'frozen'", "an index below 1", "found"});
  ckpt::write_checkpoint(path, chain.state.named(), nullptr, incremental_from(chain.dir.file("1.safetensors")));
  rewrite_header(path, [](nlohmann::ordered_json& header) { header["__metadata__"]["ckpt.format_version"] = "2"; });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"expected no ckpt.chain in a file of format version 2"});
  ckpt::write_checkpoint(path, chain.state.named(), nullptr, incremental_from(chain.dir.file("1.safetensors")));
  rewrite_metadata_json(path, "ckpt.chain",
                        [](nlohmann::ordered_json& json) { json["parent"]["file"] = "/etc/passwd"; });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"expected the ckpt.chain parent to be", "a relative file name"});
  ckpt::write_checkpoint(path, chain.state.named(), nullptr, incremental_from(chain.dir.file("1.safetensors")));
  rewrite_metadata_json(path, "ckpt.chain", [](nlohmann::ordered_json& json) {
    json["references"]["trained"] = json["references"]["frozen"];
  });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"tensor 'trained'", "either stored or referenced"});
  ckpt::write_checkpoint(path, chain.state.named(), nullptr, incremental_from(chain.dir.file("1.safetensors")));
  rewrite_metadata_json(path, "ckpt.xxh128", [](nlohmann::ordered_json& json) { json["trained"] = "00"; });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"expected ckpt.xxh128 to hold a hash of 32 lowercase hex digits"});
}

// A reference whose recorded content the source file does not hold (a
// header edited with its checksum recomputed) is an integrity error.
TEST(Incremental, ReferenceToOtherContentIsRefused) {
  ThreeFileChain chain;
  ckpt_format_test::rewrite_metadata_json(chain.last, "ckpt.chain", [](nlohmann::ordered_json& json) {
    json["references"]["frozen"]["xxh128"] = std::string(32, 'a');
  });
  expect_error<ckpt::IntegrityError>([&] { chain.load_last(); }, ckpt::ErrorId::integrity_reference,
                                     {"file '" + chain.first + "'", "tensor 'frozen'",
                                      "xxh128 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "found no stored tensor"});
}

// xor-delta: changed tensors stored as the XOR against the parent's tensor of
// the same name, dtype and shape.
struct Weights {
  std::vector<float> w = std::vector<float>(200000);
  std::vector<float> reshaped = std::vector<float>(1000, 1.0f);
  ckpt::Shape reshaped_shape{1000};

  Weights() {
    std::uint32_t x = 12345;
    for (float& value : w) {
      x = x * 1664525u + 1013904223u;
      value = float(int(x >> 8) - (1 << 23)) / float(1 << 23) * 0.05f;
    }
  }
  // A small training step: every weight moves by a tiny relative amount.
  void step(int seed) {
    for (std::size_t i = 0; i < w.size(); ++i) w[i] *= 1.0f + 1e-5f * float((i * 7 + std::size_t(seed)) % 5);
    for (float& value : reshaped) value += 1.0f;
  }
  std::vector<ckpt::NamedTensor> named() const {
    return {{"w", ckpt::TensorView(w.data(), {200, 1000})},
            {"reshaped", ckpt::TensorView(reshaped.data(), reshaped_shape)}};
  }
};

ckpt::SaveOptions xor_delta_from(const std::string& parent) {
  ckpt::SaveOptions options = incremental_from(parent);
  options.incremental.xor_delta = true;
  return options;
}

TEST(IncrementalXorDelta, ChangedTensorsAreStoredAsXorAgainstTheParent) {
  TempDir dir;
  Weights weights;
  ckpt::write_checkpoint(dir.file("0.safetensors"), weights.named(), nullptr, hashed());
  std::vector<std::vector<float>> saved{weights.w};
  std::vector<std::uint64_t> delta_bytes;
  for (int step = 1; step <= 5; ++step) {
    weights.step(step);
    weights.reshaped_shape = step % 2 ? ckpt::Shape{10, 100} : ckpt::Shape{1000};
    const std::string path = dir.file(std::to_string(step) + ".safetensors");
    ckpt::write_checkpoint(path, weights.named(), nullptr,
                           xor_delta_from(dir.file(std::to_string(step - 1) + ".safetensors")));
    saved.push_back(weights.w);
    const ckpt::Reader reader(path);
    EXPECT_EQ(reader.find("w")->codec, "xor-delta");
    EXPECT_EQ(reader.find("reshaped")->codec, "raw");  // another shape than the parent's: the normal codec
    delta_bytes.push_back(reader.find("w")->stored_bytes);
  }
  // Bit for bit at every depth, whole and by range (which XORs only the
  // base's bytes of the range).
  for (int step = 0; step <= 5; ++step) {
    SCOPED_TRACE(step);
    const ckpt::Reader reader(dir.file(std::to_string(step) + ".safetensors"));
    const ckpt::Tensor w = reader.tensor("w");
    EXPECT_EQ(std::memcmp(w.data(), saved[std::size_t(step)].data(), w.nbytes()), 0);
    std::vector<float> middle(1000);
    reader.read_range("w", 4 * 70001, 4 * 71001, middle.data());
    EXPECT_EQ(std::memcmp(middle.data(), saved[std::size_t(step)].data() + 70001, 4000), 0);
    reader.verify();
  }
  // Against shuffle+zstd of the whole tensor, the low-bit changes compress better.
  ckpt::SaveOptions shuffled;
  shuffled.codecs = "shuffle+zstd";
  ckpt::write_checkpoint(dir.file("shuffled.safetensors"), weights.named(), nullptr, shuffled);
  const std::uint64_t shuffled_bytes = ckpt::Reader(dir.file("shuffled.safetensors")).find("w")->stored_bytes;
  for (std::uint64_t bytes : delta_bytes) EXPECT_LT(bytes, shuffled_bytes);
}

TEST(IncrementalXorDelta, CorruptedBaseFailsTheLoadNamingIt) {
  TempDir dir;
  Weights weights;
  ckpt::write_checkpoint(dir.file("0.safetensors"), weights.named(), nullptr, hashed());
  weights.step(1);
  ckpt::write_checkpoint(dir.file("1.safetensors"), weights.named(), nullptr,
                         xor_delta_from(dir.file("0.safetensors")));
  std::string bytes = ckpt_format_test::read_file(dir.file("0.safetensors"));
  bytes[bytes.size() - 10000] ^= 0x01;  // in "w", stored after the 4000 bytes of "reshaped" (same size, by name)
  ckpt_format_test::write_file(dir.file("0.safetensors"), bytes);
  expect_error<ckpt::IntegrityError>([&] { ckpt::Reader(dir.file("1.safetensors")).tensor("w"); },
                                     ckpt::ErrorId::integrity_tensor_checksum,
                                     {"file '" + dir.file("0.safetensors") + "'", "tensor 'w'", "checksum mismatch"});
}

TEST(IncrementalXorDelta, DeltaMetadataMustMatchTheTensors) {
  TempDir dir;
  Weights weights;
  ckpt::write_checkpoint(dir.file("0.safetensors"), weights.named(), nullptr, hashed());
  weights.step(1);
  weights.reshaped_shape = {10, 100};  // stored raw: no base of its shape
  const std::string path = dir.file("1.safetensors");
  ckpt::write_checkpoint(path, weights.named(), nullptr, xor_delta_from(dir.file("0.safetensors")));
  ckpt_format_test::rewrite_metadata_json(path, "ckpt.chain",
                                          [](nlohmann::ordered_json& json) { json["deltas"].erase("w"); });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"tensor 'w'", "expected a delta base in ckpt.chain for this xor-delta tensor"});
  ckpt::write_checkpoint(path, weights.named(), nullptr, xor_delta_from(dir.file("0.safetensors")));
  ckpt_format_test::rewrite_metadata_json(
      path, "ckpt.chain", [](nlohmann::ordered_json& json) { json["deltas"]["reshaped"] = json["deltas"]["w"]; });
  expect_error<ckpt::FormatError>([&] { ckpt::Reader{path}; }, ckpt::ErrorId::format_metadata,
                                  {"tensor 'reshaped'", "only for a stored tensor of codec xor-delta"});
}

}  // namespace

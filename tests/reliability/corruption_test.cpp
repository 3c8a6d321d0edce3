// Corruption: thousands of damaged copies of small raw and compressed
// checkpoints (bit flips, truncations, overwritten runs). Each must be refused
// with a checksum, format or codec error, or, only when the damage touched
// nothing but header padding, load bit-exact. A wrong number is never returned.
//
// CKPT_RELIABILITY_MUTANTS (per codec) and CKPT_RELIABILITY_SEED override the
// defaults for longer or different runs; a failure prints the seed and the
// damage, which rebuild the mutant.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "fuzz/in_memory_file.hpp"
#include "mutants.hpp"
#include "report.hpp"
#include "safetensors_bytes.hpp"
#include "sample_checkpoint.hpp"
#include "support/temp_dir.hpp"

namespace ckpt::test {
namespace {

std::uint64_t from_environment(const char* name, std::uint64_t fallback) {
  const char* text = std::getenv(name);
  return text != nullptr && *text != '\0' ? std::strtoull(text, nullptr, 10) : fallback;
}

// What a reader made of one mutant.
enum class Verdict {
  integrity_error,
  format_error,
  codec_error,
  exact_damage_in_padding,
  exact_damage_elsewhere,
  wrong_values,
  other_error
};

const char* verdict_name(Verdict verdict) {
  switch (verdict) {
    case Verdict::integrity_error: return "rejected: integrity error";
    case Verdict::format_error: return "rejected: format error";
    case Verdict::codec_error: return "rejected: codec error";
    case Verdict::exact_damage_in_padding: return "loaded bit-exact, damage in padding";
    case Verdict::exact_damage_elsewhere: return "loaded bit-exact, damage outside padding";
    case Verdict::wrong_values: return "WRONG VALUES";
    case Verdict::other_error: return "unexpected error";
  }
  return "?";
}

bool acceptable(Verdict verdict) {
  return verdict != Verdict::wrong_values && verdict != Verdict::other_error &&
         verdict != Verdict::exact_damage_elsewhere;
}

// The ways a program reads a checkpoint, each from a fresh Reader: after
// verify(); trusting the first-read check of tensor() or of read_into(); and
// through Checkpoint<State>::load, which relies on that check too.
enum class Route { verify_then_tensor, first_read_tensor, first_read_read_into, checkpoint_load };
constexpr Route all_routes[] = {Route::verify_then_tensor, Route::first_read_tensor, Route::first_read_read_into,
                                Route::checkpoint_load};

const char* route_name(Route route) {
  switch (route) {
    case Route::verify_then_tensor: return "verify() then tensor()";
    case Route::first_read_tensor: return "tensor()";
    case Route::first_read_read_into: return "read_into()";
    case Route::checkpoint_load: return "Checkpoint::load";
  }
  return "?";
}

// The sample's tensors as a state: each a ckpt::Tensor, which takes the
// file's dtype and shape.
struct SampleState {
  std::vector<std::string> names;
  std::vector<Tensor> tensors;
  template <class Archive>
  void describe(Archive& ar) {
    for (std::size_t i = 0; i < names.size(); ++i) ar(names[i], tensors[i]);
  }
};

// Empty when `loaded` holds the sample's tensors exactly; otherwise what differs.
std::string tensor_difference(const std::string& name, DType dtype, const Shape& shape, const void* data,
                              const SampleCheckpoint& sample) {
  for (const NamedTensor& expected : sample.tensors) {
    if (expected.name != name) continue;
    if (dtype != expected.view.dtype() || shape != expected.view.shape()) {
      return "tensor '" + name + "' has dtype/shape " + std::string(dtype_name(dtype)) + shape_to_string(shape);
    }
    const std::uint64_t size = expected.view.nbytes();
    return size == 0 || std::memcmp(data, expected.view.data(), size) == 0
               ? ""
               : "tensor '" + name + "' has different bytes";
  }
  return "unexpected tensor '" + name + "'";
}

std::string difference_through(Route route, const std::string& path, const SampleCheckpoint& original,
                               const std::string& codec) {
  switch (route) {
    case Route::verify_then_tensor: return difference(path, original);
    case Route::first_read_tensor: return difference(Reader(path), original);
    case Route::first_read_read_into: {
      const Reader reader(path);
      for (const NamedTensor& expected : original.tensors) {
        const TensorInfo* info = reader.find(expected.name);
        if (info == nullptr) return "tensor '" + expected.name + "' missing";
        std::vector<std::byte> bytes(byte_size(info->dtype, info->shape));
        reader.read_into(expected.name, bytes.data(), bytes.size());
        const std::string problem = tensor_difference(expected.name, info->dtype, info->shape, bytes.data(), original);
        if (!problem.empty()) return problem;
      }
      return "";
    }
    case Route::checkpoint_load: {
      SampleState state;
      for (const NamedTensor& expected : original.tensors) state.names.push_back(expected.name);
      state.tensors.resize(state.names.size());
      Checkpoint<SampleState>(sample_options(codec)).load(path, state);
      for (std::size_t i = 0; i < state.names.size(); ++i) {
        const Tensor& loaded = state.tensors[i];
        const std::string problem =
            tensor_difference(state.names[i], loaded.dtype(), loaded.shape(), loaded.data(), original);
        if (!problem.empty()) return problem;
      }
      return "";
    }
  }
  return "unknown route";
}

Verdict judge(Route route, const std::string& path, const SampleCheckpoint& original, const std::string& codec,
              const Mutant& mutant, const std::vector<bool>& padding, std::string& detail) {
  try {
    detail = difference_through(route, path, original, codec);
    if (!detail.empty()) return Verdict::wrong_values;
    for (std::size_t offset : mutant.changed) {
      if (offset >= padding.size() || !padding[offset]) return Verdict::exact_damage_elsewhere;
    }
    return Verdict::exact_damage_in_padding;
  } catch (const IntegrityError&) {
    return Verdict::integrity_error;
  } catch (const FormatError&) {
    return Verdict::format_error;
  } catch (const CodecError&) {
    return Verdict::codec_error;
  } catch (const std::exception& e) {
    detail = e.what();
    return Verdict::other_error;
  }
}

class Corruption : public ::testing::TestWithParam<std::string> {};

TEST_P(Corruption, EveryMutantIsRejectedOrLoadsBitExact) {
  const std::string codec = GetParam();
  const std::uint64_t per_damage = from_environment("CKPT_RELIABILITY_MUTANTS", 3400) / 3;
  // Each codec gets its own stream of mutants (the codec names differ in length).
  const std::uint64_t seed = from_environment("CKPT_RELIABILITY_SEED", 20261128) + codec.size();

  TempDir dir;
  const SampleCheckpoint original = make_sample(7);
  const std::string original_path = dir.file("original.ckpt");
  save_sample(original_path, original, codec);
  ASSERT_EQ(difference(original_path, original), "");
  const Bytes pristine = read_file_bytes(original_path);
  const std::vector<bool> padding = padding_mask(pristine);

  MutantGenerator generator(seed);
  std::map<Damage, std::map<Verdict, std::uint64_t>> verdicts;  // of the verify() route, as before
  std::map<Route, std::uint64_t> judged;
  std::uint64_t failures = 0;
  for (Damage damage : all_damages) {
    for (std::uint64_t i = 0; i < per_damage; ++i) {
      const Mutant mutant = generator.make(pristine, damage);
      const std::string path = fuzz::in_memory_file(mutant.bytes.data(), mutant.bytes.size());
      for (Route route : all_routes) {
        std::string detail;
        const Verdict verdict = judge(route, path, original, codec, mutant, padding, detail);
        if (route == Route::verify_then_tensor) ++verdicts[damage][verdict];
        ++judged[route];
        if (!acceptable(verdict) && ++failures <= 20) {
          ADD_FAILURE() << codec << " seed " << seed << ", " << damage_name(damage) << " #" << i << " ("
                        << mutant.description << ") through " << route_name(route) << ": " << verdict_name(verdict)
                        << " " << detail;
        }
      }
    }
  }
  EXPECT_EQ(failures, 0u) << "of " << 3 * per_damage << " mutants of a " << pristine.size() << "-byte file";
  // The README's Reliability section states 10,197 mutants per run: 3,399 per codec.
  if (std::getenv("CKPT_RELIABILITY_MUTANTS") == nullptr) {
    EXPECT_EQ(3 * per_damage, 3399u);
  }
  for (Route route : all_routes) {
    EXPECT_EQ(judged[route], 3 * per_damage) << route_name(route);
    report_count("corruption mutants judged (" + codec + ", through " + route_name(route) + ")", judged[route]);
  }

  std::uint64_t total = 0;
  for (const auto& [damage, counts] : verdicts) {
    for (const auto& [verdict, count] : counts) {
      report_count("corruption verdicts (" + codec + ", " + damage_name(damage) + ", " + verdict_name(verdict) + ")",
                   count);
      total += count;
    }
  }
  report_count("corruption mutants (" + codec + ", " + std::to_string(pristine.size()) + "-byte file)", total);
}

// Incremental checkpoints (docs/format.md, section 8): a child saved against
// its parent references the parent's unchanged tensors and stores two changed
// ones as xor-delta over the parent's, so a load of the child reads both
// files. Each mutant damages one of them (the other pristine, both real
// files: the child names its parent by a relative name) and must be refused
// with a checksum, format or codec error, never read as wrong numbers.
TEST_P(Corruption, EveryMutantOfAChainIsRejectedOrLoadsBitExact) {
  const std::string codec = GetParam();
  const std::uint64_t per_damage = from_environment("CKPT_RELIABILITY_CHAIN_MUTANTS", 1200) / 6;
  const std::uint64_t seed = from_environment("CKPT_RELIABILITY_SEED", 20261130) + codec.size();

  TempDir dir;
  const SampleCheckpoint parent = make_sample(7);
  SaveOptions parent_options = sample_options(codec);
  parent_options.incremental.content_hashes = true;
  write_checkpoint(dir.file("parent.ckpt"), parent.tensors, parent.metadata, parent_options);
  // The child: the weights' low bits and one count moved, the rest unchanged.
  SampleCheckpoint child = make_sample(7);
  for (std::size_t i = 0; i < child.storage[0].size(); i += 4) child.storage[0][i] ^= std::byte{1};
  child.storage[6][0] ^= std::byte{3};
  child.metadata["step"] = 8;
  SaveOptions child_options = parent_options;
  child_options.incremental.parent = dir.file("parent.ckpt");
  child_options.incremental.xor_delta = true;
  write_checkpoint(dir.file("child.ckpt"), child.tensors, child.metadata, child_options);
  {
    const Reader reader(dir.file("child.ckpt"));
    ASSERT_EQ(reader.find("model/fc1.weight")->codec, "xor-delta");
    ASSERT_EQ(reader.find("counts")->codec, "xor-delta");
    ASSERT_EQ(reader.find("model/emb")->codec, "reference");
  }
  ASSERT_EQ(difference(dir.file("child.ckpt"), child), "");

  MutantGenerator generator(seed);
  std::map<std::string, std::map<Verdict, std::uint64_t>> verdicts;  // by file, of every route
  std::uint64_t failures = 0, judged = 0;
  for (const char* damaged : {"child.ckpt", "parent.ckpt"}) {
    const std::string path = dir.file(damaged);
    const Bytes pristine = read_file_bytes(path);
    const std::vector<bool> padding = padding_mask(pristine);
    for (Damage damage : all_damages) {
      for (std::uint64_t i = 0; i < per_damage; ++i) {
        const Mutant mutant = generator.make(pristine, damage);
        write_file_bytes(path, mutant.bytes);
        for (Route route : all_routes) {
          std::string detail;
          const Verdict verdict = judge(route, dir.file("child.ckpt"), child, codec, mutant, padding, detail);
          ++verdicts[damaged][verdict];
          ++judged;
          if (!acceptable(verdict) && ++failures <= 20) {
            ADD_FAILURE() << codec << " seed " << seed << ", " << damaged << " " << damage_name(damage) << " #" << i
                          << " (" << mutant.description << ") through " << route_name(route) << ": "
                          << verdict_name(verdict) << " " << detail;
          }
        }
      }
    }
    write_file_bytes(path, pristine);
  }
  EXPECT_EQ(failures, 0u) << "of " << 6 * per_damage << " mutants of a chain";
  // The README's Reliability section states 3,600 chain mutants per run: 1,200 per codec, each read four ways.
  if (std::getenv("CKPT_RELIABILITY_CHAIN_MUTANTS") == nullptr) {
    EXPECT_EQ(6 * per_damage, 1200u);
  }
  EXPECT_EQ(judged, 6 * per_damage * std::size(all_routes));
  for (const auto& [file, counts] : verdicts) {
    for (const auto& [verdict, count] : counts) {
      report_count("chain corruption verdicts (" + codec + ", " + file + " damaged, " + verdict_name(verdict) + ")",
                   count);
    }
  }
  report_count("chain corruption mutants (" + codec + ")", 6 * per_damage);
}

// Format v2's block checksums: damage inside any one block of any tensor is
// found by a read of just that block (naming the block), and a read of
// another block of the tensor still gives the saved bytes.
TEST_P(Corruption, DamageInAnyBlockIsFoundByAReadOfThatBlock) {
  const std::string codec = GetParam();
  const std::uint64_t seed = from_environment("CKPT_RELIABILITY_SEED", 20261128) + 100 + codec.size();
  TempDir dir;
  const SampleCheckpoint original = make_sample(7);
  const std::string original_path = dir.file("original.ckpt");
  save_sample(original_path, original, codec);
  const Bytes pristine = read_file_bytes(original_path);
  const Reader layout(original_path);
  const nlohmann::json infos = nlohmann::json::parse(layout.raw_metadata().at("ckpt.tensors"));

  MutantGenerator generator(seed);
  std::uint64_t blocks = 0, mutants = 0;
  for (const NamedTensor& tensor : original.tensors) {
    const TensorInfo& info = *layout.find(tensor.name);
    const nlohmann::json& entry = infos.at(tensor.name);
    const std::size_t count = entry.at("blocks").size();
    // Stored span of block b, and the decoded bytes a read of just that block covers.
    const auto stored_span = [&](std::size_t b) {
      std::uint64_t begin = 0, end = 0;
      if (info.codec == "raw") {
        begin = b * entry.at("block_bytes").get<std::uint64_t>();
        end = std::min(begin + entry.at("block_bytes").get<std::uint64_t>(), info.stored_bytes);
      } else {
        for (std::size_t i = 0; i <= b; ++i) {
          begin = end;
          end += entry.at("chunks")[i].get<std::uint64_t>();
        }
      }
      return std::pair<std::uint64_t, std::uint64_t>(begin, end);
    };
    const auto decoded_span = [&](std::size_t b) {
      if (info.codec == "raw") return stored_span(b);
      const std::uint64_t chunk = entry.at("chunk_bytes").get<std::uint64_t>();
      return std::pair<std::uint64_t, std::uint64_t>(b * chunk, std::min((b + 1) * chunk, tensor.view.nbytes()));
    };
    for (std::size_t b = 0; b < count; ++b, ++blocks) {
      const auto [stored_begin, stored_end] = stored_span(b);
      for (int repeat = 0; repeat < 16; ++repeat, ++mutants) {
        const Mutant mutant =
            generator.flip_within(pristine, info.file_offset + stored_begin, info.file_offset + stored_end);
        const std::string where = codec + " seed " + std::to_string(seed) + ", tensor '" + tensor.name + "' block " +
                                  std::to_string(b) + " (" + mutant.description + ")";
        const Reader reader(fuzz::in_memory_file(mutant.bytes.data(), mutant.bytes.size()));
        const auto [begin, end] = decoded_span(b);
        std::vector<std::byte> out(end - begin);
        try {
          reader.read_range(tensor.name, begin, end, out.data());
          ADD_FAILURE() << where << ": read without an error";
        } catch (const IntegrityError& error) {
          EXPECT_EQ(error.id(), ErrorId::integrity_tensor_checksum) << where;
          EXPECT_EQ(error.tensor(), tensor.name) << where;
          const std::string block = "block " + std::to_string(b) + " of " + std::to_string(count) + " (stored bytes [" +
                                    std::to_string(stored_begin) + ", " + std::to_string(stored_end) + "))";
          EXPECT_NE(std::string(error.what()).find(block), std::string::npos) << where << ": " << error.what();
        }
        if (count < 2) continue;
        const auto [other_begin, other_end] = decoded_span((b + 1) % count);
        std::vector<std::byte> other(other_end - other_begin);
        reader.read_range(tensor.name, other_begin, other_end, other.data());
        EXPECT_EQ(
            std::memcmp(other.data(), static_cast<const std::byte*>(tensor.view.data()) + other_begin, other.size()), 0)
            << where;
      }
    }
  }
  EXPECT_GT(blocks, original.tensors.size());  // several tensors have several blocks
  report_count("block corruption mutants (" + codec + ", " + std::to_string(blocks) + " blocks)", mutants);
}

INSTANTIATE_TEST_SUITE_P(Codecs, Corruption, ::testing::Values("raw", "zstd", "shuffle+zstd"), [](const auto& info) {
  return info.param == "shuffle+zstd" ? std::string("shuffle_zstd") : info.param;
});

}  // namespace
}  // namespace ckpt::test

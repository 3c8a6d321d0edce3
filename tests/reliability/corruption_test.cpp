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
enum class Verdict { integrity_error, format_error, codec_error, exact_damage_in_padding, exact_damage_elsewhere,
                     wrong_values, other_error };

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

Verdict judge(const std::string& path, const SampleCheckpoint& original, const Mutant& mutant,
              const std::vector<bool>& padding, std::string& detail) {
  try {
    detail = difference(path, original);
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
  std::map<Damage, std::map<Verdict, std::uint64_t>> verdicts;
  std::uint64_t failures = 0;
  for (Damage damage : all_damages) {
    for (std::uint64_t i = 0; i < per_damage; ++i) {
      const Mutant mutant = generator.make(pristine, damage);
      std::string detail;
      const Verdict verdict =
          judge(fuzz::in_memory_file(mutant.bytes.data(), mutant.bytes.size()), original, mutant, padding, detail);
      ++verdicts[damage][verdict];
      if (!acceptable(verdict) && ++failures <= 20) {
        ADD_FAILURE() << codec << " seed " << seed << ", " << damage_name(damage) << " #" << i << " ("
                      << mutant.description << "): " << verdict_name(verdict) << " " << detail;
      }
    }
  }
  EXPECT_EQ(failures, 0u) << "of " << 3 * per_damage << " mutants of a " << pristine.size() << "-byte file";

  std::uint64_t total = 0;
  for (const auto& [damage, counts] : verdicts) {
    for (const auto& [verdict, count] : counts) {
      report_count("corruption verdicts (" + codec + ", " + damage_name(damage) + ", " + verdict_name(verdict) + ")", count);
      total += count;
    }
  }
  report_count("corruption mutants (" + codec + ", " + std::to_string(pristine.size()) + "-byte file)", total);
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
        const Mutant mutant = generator.flip_within(pristine, info.file_offset + stored_begin,
                                                    info.file_offset + stored_end);
        const std::string where = codec + " seed " + std::to_string(seed) + ", tensor '" + tensor.name +
                                  "' block " + std::to_string(b) + " (" + mutant.description + ")";
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
        EXPECT_EQ(std::memcmp(other.data(), static_cast<const std::byte*>(tensor.view.data()) + other_begin,
                              other.size()),
                  0)
            << where;
      }
    }
  }
  EXPECT_GT(blocks, original.tensors.size());  // several tensors have several blocks
  report_count("block corruption mutants (" + codec + ", " + std::to_string(blocks) + " blocks)", mutants);
}

INSTANTIATE_TEST_SUITE_P(Codecs, Corruption, ::testing::Values("raw", "zstd", "shuffle+zstd"),
                         [](const auto& info) { return info.param == "shuffle+zstd" ? std::string("shuffle_zstd")
                                                                                     : info.param; });

}  // namespace
}  // namespace ckpt::test

// Corruption: thousands of damaged copies of small raw and compressed
// checkpoints (bit flips, truncations, overwritten runs). Each must be refused
// with a checksum, format or codec error, or, only when the damage touched
// nothing but header padding, load bit-exact. A wrong number is never returned.
//
// CKPT_RELIABILITY_MUTANTS (per codec) and CKPT_RELIABILITY_SEED override the
// defaults for longer or different runs; a failure prints the seed and the
// damage, which rebuild the mutant.

#include <gtest/gtest.h>

#include <cstdlib>
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

INSTANTIATE_TEST_SUITE_P(Codecs, Corruption, ::testing::Values("raw", "zstd", "shuffle+zstd"),
                         [](const auto& info) { return info.param == "shuffle+zstd" ? std::string("shuffle_zstd")
                                                                                     : info.param; });

}  // namespace
}  // namespace ckpt::test

#pragma once

// Deterministic damage to a file's bytes: the three kinds storage really
// produces (flipped bits, lost tails, overwritten runs), from a seed, so any
// failing mutant can be rebuilt from the numbers the test prints.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace ckpt::test {

enum class Damage { bit_flip, truncation, byte_run };
inline constexpr Damage all_damages[] = {Damage::bit_flip, Damage::truncation, Damage::byte_run};

inline const char* damage_name(Damage damage) {
  switch (damage) {
    case Damage::bit_flip: return "bit_flip";
    case Damage::truncation: return "truncation";
    case Damage::byte_run: return "byte_run";
  }
  return "?";
}

struct Mutant {
  std::vector<std::byte> bytes;
  std::vector<std::size_t> changed;  // offsets of the original whose byte differs or is gone
  std::string description;
};

class MutantGenerator {
 public:
  explicit MutantGenerator(std::uint64_t seed) : random_(seed) {}

  // A copy of `original` with 1 to 3 bits flipped in bytes [begin, end)
  // (not empty): damage confined to one checksum block.
  Mutant flip_within(const std::vector<std::byte>& original, std::size_t begin, std::size_t end) {
    Mutant mutant;
    mutant.bytes = original;
    mutant.description = "flipped bits at";
    const std::size_t flips = 1 + below(3);
    for (std::size_t i = 0; i < flips; ++i) {
      const std::size_t bit = begin * 8 + below((end - begin) * 8);
      mutant.bytes[bit / 8] ^= std::byte(1u << (bit % 8));
      mutant.description += " " + std::to_string(bit / 8) + "." + std::to_string(bit % 8);
    }
    for (std::size_t i = begin; i < end; ++i) {
      if (mutant.bytes[i] != original[i]) mutant.changed.push_back(i);
    }
    return mutant;
  }

  // A copy of `original` (at least 2 bytes) that differs from it.
  Mutant make(const std::vector<std::byte>& original, Damage damage) {
    Mutant mutant;
    do {
      mutant.bytes = original;
      mutant.description = apply(mutant.bytes, damage);
    } while (mutant.bytes == original);
    for (std::size_t i = 0; i < original.size(); ++i) {
      if (i >= mutant.bytes.size() || mutant.bytes[i] != original[i]) mutant.changed.push_back(i);
    }
    return mutant;
  }

 private:
  std::size_t below(std::size_t bound) { return std::uniform_int_distribution<std::size_t>(0, bound - 1)(random_); }

  std::string apply(std::vector<std::byte>& bytes, Damage damage) {
    switch (damage) {
      case Damage::bit_flip: {
        const std::size_t flips = 1 + below(3);
        std::string text = "flipped bits at";
        for (std::size_t i = 0; i < flips; ++i) {
          const std::size_t bit = below(bytes.size() * 8);
          bytes[bit / 8] ^= std::byte(1u << (bit % 8));
          text += " " + std::to_string(bit / 8) + "." + std::to_string(bit % 8);
        }
        return text;
      }
      case Damage::truncation: {
        const std::size_t size = below(bytes.size());
        bytes.resize(size);
        return "truncated to " + std::to_string(size) + " bytes";
      }
      case Damage::byte_run: {
        const std::size_t start = below(bytes.size());
        const std::size_t length = std::min(1 + below(48), bytes.size() - start);
        // Zeros and 0xFF are what failing disks and lost sectors leave; random bytes the rest.
        const int fill = static_cast<int>(below(3));
        for (std::size_t i = start; i < start + length; ++i) {
          bytes[i] = fill == 0 ? std::byte{0} : fill == 1 ? std::byte{0xFF} : std::byte(below(256));
        }
        return "overwrote " + std::to_string(length) + " bytes at " + std::to_string(start) + " with " +
               (fill == 0   ? "zeros"
                : fill == 1 ? "0xFF"
                            : "random bytes");
      }
    }
    return {};
  }

  std::mt19937_64 random_;
};

}  // namespace ckpt::test

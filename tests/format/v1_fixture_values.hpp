#pragma once

// The tensors of tests/data/format_v1.ckpt, a format version 1 file written
// by ckpt at commit 2ce8c0a (format version 1, as every commit before format version 2) with
// tests/format/make_v1_fixture.cpp. Values follow closed formulas so a test
// can rebuild them bit for bit; chunk_bytes 512 gives the encoded tensors
// several chunks each.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <ckpt/ckpt.hpp>

namespace ckpt_v1_fixture {

inline constexpr std::size_t chunk_bytes = 512;

struct FixtureTensor {
  std::string name;
  std::string codec;
  ckpt::DType dtype;
  ckpt::Shape shape;
  std::vector<std::byte> bytes;
};

template <class T>
std::vector<std::byte> bytes_of(const std::vector<T>& values) {
  const auto* begin = reinterpret_cast<const std::byte*>(values.data());
  return std::vector<std::byte>(begin, begin + values.size() * sizeof(T));
}

inline std::vector<FixtureTensor> tensors() {
  std::vector<float> raw(16 * 16), zstd(32 * 8);
  std::vector<std::int64_t> counters(8);
  std::vector<double> shuffled(300);
  for (std::size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<float>(i) * 0.25f - 7.0f;
  for (std::size_t i = 0; i < counters.size(); ++i) counters[i] = static_cast<std::int64_t>(i) * 1000000000007 - 3;
  for (std::size_t i = 0; i < zstd.size(); ++i) zstd[i] = static_cast<float>(i % 13) * 0.5f;
  for (std::size_t i = 0; i < shuffled.size(); ++i) shuffled[i] = static_cast<double>((i * i) % 97) * 0.125;
  return {
      {"raw_f32", "raw", ckpt::DType::F32, {16, 16}, bytes_of(raw)},
      {"raw_i64", "raw", ckpt::DType::I64, {8}, bytes_of(counters)},
      {"zstd_f32", "zstd", ckpt::DType::F32, {32, 8}, bytes_of(zstd)},
      {"shuffled_f64", "shuffle+zstd", ckpt::DType::F64, {300}, bytes_of(shuffled)},
      {"empty_f32", "raw", ckpt::DType::F32, {0}, {}},
  };
}

}  // namespace ckpt_v1_fixture

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "ckpt/detail/text.hpp"

namespace {

using ckpt::detail::join;

// join() replaced chains of std::string operator+ and std::to_string in
// every message, so it must give the same bytes those chains gave.
TEST(TextJoin, GivesTheBytesOfOperatorPlusAndToString) {
  const std::string name = "model/fc1.weight";
  const std::string_view view = "view";
  const std::uint64_t largest = std::numeric_limits<std::uint64_t>::max();
  const std::int64_t most_negative = std::numeric_limits<std::int64_t>::min();
  const int minus_seven = -7;
  const long long minus_ten = -10;
  const unsigned zero = 0;
  EXPECT_EQ(join({"tensor '", name, "' at ", view, " ", zero, " ", largest, " ", most_negative, " ", minus_seven, " ",
                  minus_ten, " ", 0}),
            "tensor '" + name + "' at " + std::string(view) + " " + std::to_string(zero) + " " +
                std::to_string(largest) + " " + std::to_string(most_negative) + " " + std::to_string(minus_seven) +
                " " + std::to_string(minus_ten) + " " + std::to_string(0));
  EXPECT_EQ(join({std::to_string(largest)}), "18446744073709551615");
  EXPECT_EQ(join({most_negative}), "-9223372036854775808");
  EXPECT_EQ(join({std::numeric_limits<int>::min()}), std::to_string(std::numeric_limits<int>::min()));
  EXPECT_EQ(join({std::numeric_limits<short>::min()}), std::to_string(std::numeric_limits<short>::min()));
  EXPECT_EQ(join({std::numeric_limits<std::size_t>::max()}), std::to_string(std::numeric_limits<std::size_t>::max()));
}

TEST(TextJoin, KeepsEmptyPiecesAndNulBytes) {
  EXPECT_EQ(join({}), "");
  EXPECT_EQ(join({"", std::string(), std::string_view()}), "");
  EXPECT_EQ(join({"a", "", "b", std::string(), "c"}), "abc");
  const std::string with_nul("x\0y", 3);
  EXPECT_EQ(join({"[", with_nul, "]"}), std::string("[x\0y]", 5));
}

}  // namespace

#include <gtest/gtest.h>

#include <cstddef>
#include <memory>
#include <vector>

#include "ckpt/detail/order.hpp"

namespace {

// The sorts ckpt runs through detail/order.hpp (a header's records out of
// file order, a parent's references, the largest tensors first, retention
// by metric) rely on equal keys keeping their order: files and deletions
// must not depend on how the algorithm breaks ties.
TEST(StableOrder, EqualKeysKeepTheirOrder) {
  const std::vector<int> keys{3, 1, 3, 2, 1, 3};
  const std::vector<std::size_t> order =
      ckpt::detail::stable_order(keys.size(), [&](std::size_t a, std::size_t b) { return keys[a] < keys[b]; });
  EXPECT_EQ(order, (std::vector<std::size_t>{1, 4, 3, 0, 2, 5}));
}

TEST(StableOrder, SortsPositionsAlreadyChosen) {
  const std::vector<int> keys{5, 7, 5, 9};
  std::vector<std::size_t> positions{3, 2, 1, 0};
  const auto larger = [&](std::size_t a, std::size_t b) { return keys[a] > keys[b]; };
  ckpt::detail::stable_sort_positions(positions, ckpt::detail::PositionLess(larger));
  EXPECT_EQ(positions, (std::vector<std::size_t>{3, 1, 2, 0}));
}

// Items are moved, never copied: records and references hold strings and
// shapes, and some callers' items cannot be copied at all.
TEST(StableOrder, SortsItemsThatCanOnlyBeMoved) {
  std::vector<std::unique_ptr<int>> items;
  for (int value : {4, 2, 4, 1}) items.push_back(std::make_unique<int>(value));
  const int* first_four = items[0].get();
  const int* second_four = items[2].get();
  ckpt::detail::stable_sort_items(items, [](const auto& a, const auto& b) { return *a < *b; });
  ASSERT_EQ(items.size(), 4u);
  EXPECT_EQ(*items[0], 1);
  EXPECT_EQ(*items[1], 2);
  EXPECT_EQ(items[2].get(), first_four);
  EXPECT_EQ(items[3].get(), second_four);
}

}  // namespace

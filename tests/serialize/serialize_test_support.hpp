#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <optional>
#include <string>

#include "ckpt/checkpoint.hpp"

namespace serialize_test {

// A state of one value under one name.
template <class T>
struct Named {
  std::string name;
  T value{};
  template <class Archive>
  void describe(Archive& ar) {
    ar(name, value);
  }
};

// Both states save the same tensors (names, dtypes, shapes, bytes) and the
// same metadata: equal bit for bit, NaN payloads included.
template <class State>
void expect_same_saved_state(const State& expected, const State& actual) {
  const ckpt::CollectedState a = ckpt::collect_state(expected);
  const ckpt::CollectedState b = ckpt::collect_state(actual);
  EXPECT_EQ(a.metadata, b.metadata);
  ASSERT_EQ(a.tensors.size(), b.tensors.size());
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const ckpt::NamedTensor& x = a.tensors[i];
    const ckpt::NamedTensor& y = b.tensors[i];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.view.dtype(), y.view.dtype()) << x.name;
    EXPECT_EQ(x.view.shape(), y.view.shape()) << x.name;
    if (x.view.nbytes() == y.view.nbytes() && x.view.nbytes() != 0) {
      EXPECT_EQ(std::memcmp(x.view.data(), y.view.data(), x.view.nbytes()), 0) << x.name << " differs";
    }
  }
}

// Runs `action`, expecting an ErrorType with `id`; returns the error caught.
template <class ErrorType, class Action>
std::optional<ErrorType> expect_error(ckpt::ErrorId id, Action&& action) {
  try {
    action();
  } catch (const ErrorType& error) {
    EXPECT_EQ(error.id(), id) << error.what();
    return error;
  }
  ADD_FAILURE() << "expected an exception with id " << static_cast<int>(id);
  return std::nullopt;
}

}  // namespace serialize_test

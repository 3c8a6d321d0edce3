#pragma once

// The tests' one check of an error a user gets: its kind (the class caught),
// its id, and that its message holds every fragment (the file, the tensor,
// what was expected and what was found).

#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckpt/error.hpp"

namespace ckpt::test {

// Checks an error already caught: its id, and a message holding every fragment.
inline void expect_id_and_message(const Error& error, ErrorId id, const std::vector<std::string>& fragments) {
  EXPECT_EQ(error.id(), id) << error.what();
  for (const std::string& fragment : fragments) {
    EXPECT_NE(std::string(error.what()).find(fragment), std::string::npos)
        << "message '" << error.what() << "' lacks '" << fragment << "'";
  }
}

// Runs `action`, expecting it to throw `Kind` with `id` and a message holding
// every fragment; returns the error caught (nothing when none was).
template <class Kind = Error, class Action>
std::optional<Kind> expect_error(Action&& action, ErrorId id, const std::vector<std::string>& fragments = {}) {
  try {
    action();
  } catch (const Kind& error) {
    expect_id_and_message(error, id, fragments);
    return error;
  } catch (const std::exception& error) {
    ADD_FAILURE() << "expected another kind of error (id " << static_cast<int>(id) << "), got: " << error.what();
    return std::nullopt;
  }
  ADD_FAILURE() << "expected an error with id " << static_cast<int>(id) << ", nothing was thrown";
  return std::nullopt;
}

}  // namespace ckpt::test

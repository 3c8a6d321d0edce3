// Errors keep their parts (id, file, tensor, message) as fields, and context
// is added by building a new error from them: the class and the id survive,
// and what() names the file and the tensor once.
#include <gtest/gtest.h>

#include <string>
#include <typeinfo>

#include "ckpt/error.hpp"

namespace {

using ckpt::ErrorId;

// Runs `inner` (which throws) and rethrows its error with `file`, `tensor`
// and `context`; hands what arrives to `check`, caught as the base class.
template <class Throw, class Check>
void expect_rethrown(Throw inner, const std::string& file, const std::string& tensor, const std::string& context,
                     Check check) {
  try {
    try {
      inner();
    } catch (const ckpt::Error& error) {
      error.rethrow_with(file, tensor, context);
    }
    ADD_FAILURE() << "nothing was thrown";
  } catch (const ckpt::Error& error) {
    check(error);
  }
}

TEST(Error, KeepsItsPartsAndBuildsWhatFromThem) {
  const ckpt::FormatError error(ErrorId::format_offsets, "a.safetensors", "w", "expected 4, found 6");
  EXPECT_EQ(error.id(), ErrorId::format_offsets);
  EXPECT_EQ(error.file(), "a.safetensors");
  EXPECT_EQ(error.tensor(), "w");
  EXPECT_EQ(error.message(), "expected 4, found 6");
  EXPECT_EQ(std::string(error.what()), "[ckpt.format_error.205] file 'a.safetensors': tensor 'w': expected 4, found 6");
  EXPECT_EQ(std::string(ckpt::StateError(ErrorId::state_locked, "", "", "locked").what()),
            "[ckpt.state_error.701] locked");
}

template <class Kind>
class ErrorKind : public ::testing::Test {};
template <class Kind, ErrorId Id>
struct KindAndId {
  using type = Kind;
  static constexpr ErrorId id = Id;
};
using Kinds = ::testing::Types<
    KindAndId<ckpt::IoError, ErrorId::io_no_space>, KindAndId<ckpt::FormatError, ErrorId::format_metadata>,
    KindAndId<ckpt::IntegrityError, ErrorId::integrity_tensor_checksum>,
    KindAndId<ckpt::CodecError, ErrorId::codec_decode>, KindAndId<ckpt::MismatchError, ErrorId::mismatch_state>,
    KindAndId<ckpt::ArgumentError, ErrorId::argument_name>, KindAndId<ckpt::StateError, ErrorId::state_not_found>,
    KindAndId<ckpt::Error, ErrorId::io_read>>;
TYPED_TEST_SUITE(ErrorKind, Kinds);

TYPED_TEST(ErrorKind, RethrownWithContextKeepsItsClassAndIdAndNamesEachPartOnce) {
  using Kind = typename TypeParam::type;
  expect_rethrown([] { throw Kind(TypeParam::id, "", "", "what went wrong"); }, "model.safetensors", "layer/w",
                  "while doing this: ",
                  [](const ckpt::Error& error) {
                    EXPECT_EQ(typeid(error), typeid(Kind));
                    EXPECT_EQ(error.id(), TypeParam::id);
                    EXPECT_EQ(error.file(), "model.safetensors");
                    EXPECT_EQ(error.tensor(), "layer/w");
                    EXPECT_EQ(error.message(), "while doing this: what went wrong");
                    EXPECT_EQ(std::string(error.what()),
                              ckpt::detail::format_error_message(TypeParam::id, "model.safetensors", "layer/w",
                                                                 "while doing this: what went wrong"));
                  });
}

TEST(Error, ContextNeverReplacesWhatTheThrowerNamed) {
  expect_rethrown(
      [] { throw ckpt::IoError(ErrorId::io_remove, "dir/old.safetensors", "", "unlink failed: I/O error"); },
      "dir/new.safetensors", "w", "background save of step 3: ",
      [](const ckpt::Error& error) {
        EXPECT_EQ(error.file(), "dir/old.safetensors");
        EXPECT_EQ(error.tensor(), "w");
        EXPECT_EQ(std::string(error.what()),
                  "[ckpt.io_error.108] file 'dir/old.safetensors': tensor 'w': background save of step 3: "
                  "unlink failed: I/O error");
      });
}

}  // namespace

// Name rules: hierarchical joins, and the errors a user sees for an empty,
// NUL-carrying, overlong or duplicate name.

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "ckpt/checkpoint.hpp"
#include "serialize_test_support.hpp"
#include "support/temp_dir.hpp"

namespace {

using ckpt::test::TempDir;
using serialize_test::expect_error;

// A state whose one tensor gets whatever name the test chooses.
using NamedValue = serialize_test::Named<std::vector<float>>;

struct Inner {
  std::vector<float> b{1.0f};
  template <class Archive>
  void describe(Archive& ar) {
    ar("b", b);
  }
};

// "a" > "b" and "a/b" both produce the name "a/b".
struct Collision {
  Inner a;
  std::vector<float> flat{2.0f};
  template <class Archive>
  void describe(Archive& ar) {
    ar("a", a)("a/b", flat);
  }
};

// A tensor and a metadata value under one name.
struct KindCollision {
  std::vector<float> weights{1.0f};
  int step = 3;
  template <class Archive>
  void describe(Archive& ar) {
    ar("model", weights)("model", step);
  }
};

TEST(Names, JoinNestsWithSlashFromTheRoot) {
  EXPECT_EQ(ckpt::join_name("", "model"), "model");
  EXPECT_EQ(ckpt::join_name("model", "fc1.weight"), "model/fc1.weight");
}

TEST(Names, ValidNamesPass) {
  EXPECT_NO_THROW(ckpt::validate_name("optimizer/exp_avg/fc1.weight"));
  EXPECT_NO_THROW(ckpt::validate_name(std::string(ckpt::max_name_bytes, 'x')));
}

TEST(Names, EmptyNameIsRejectedWithItsPlace) {
  const auto error =
      expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_name, [] { ckpt::collect_state(NamedValue{""}); });
  ASSERT_TRUE(error);
  EXPECT_NE(std::string(error->what()).find("an empty name"), std::string::npos) << error->what();
}

TEST(Names, NulByteIsRejected) {
  const auto error = expect_error<ckpt::ArgumentError>(
      ckpt::ErrorId::argument_name, [] { ckpt::collect_state(NamedValue{std::string("fc\0weight", 9)}); });
  ASSERT_TRUE(error);
  EXPECT_NE(std::string(error->what()).find("NUL"), std::string::npos) << error->what();
}

TEST(Names, OverlongNameIsRejectedWithItsLength) {
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_name,
                                                       [] { ckpt::collect_state(NamedValue{std::string(2000, 'w')}); });
  ASSERT_TRUE(error);
  const std::string message = error->what();
  EXPECT_NE(message.find("at most 1024 bytes, found 2000"), std::string::npos) << message;
  EXPECT_LT(error->tensor().size(), 100u) << "the error shows the start of the name only";
}

TEST(Names, ReservedSafetensorsKeyIsRejected) {
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_name,
                                                       [] { ckpt::collect_state(NamedValue{"__metadata__"}); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->tensor(), "__metadata__");
}

TEST(Names, NamesThatCouldEscapeAnExportDirectoryAreRejected) {
  for (const char* name : {"../escape", "model/", "/model"}) {
    const auto error =
        expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_name, [&] { ckpt::collect_state(NamedValue{name}); });
    ASSERT_TRUE(error);
    EXPECT_EQ(error->tensor(), name);
  }
}

TEST(Names, DuplicateNamesBothPlaces) {
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_duplicate_name,
                                                       [] { ckpt::collect_state(Collision{}); });
  ASSERT_TRUE(error);
  const std::string message = error->what();
  EXPECT_EQ(error->tensor(), "a/b");
  EXPECT_NE(message.find("\"a\" > \"b\""), std::string::npos) << message;
  EXPECT_NE(message.find("\"a/b\""), std::string::npos) << message;
}

TEST(Names, TensorAndMetadataShareOneNamespace) {
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_duplicate_name,
                                                       [] { ckpt::collect_state(KindCollision{}); });
  ASSERT_TRUE(error);
  const std::string message = error->what();
  EXPECT_NE(message.find("by the tensor"), std::string::npos) << message;
  EXPECT_NE(message.find("by the metadata"), std::string::npos) << message;
}

TEST(Names, SaveNamesTheFileAndWritesNothing) {
  TempDir dir;
  const std::string path = dir.file("bad.safetensors");
  const auto error = expect_error<ckpt::ArgumentError>(ckpt::ErrorId::argument_duplicate_name,
                                                       [&] { ckpt::Checkpoint<Collision>().save(path, Collision{}); });
  ASSERT_TRUE(error);
  EXPECT_EQ(error->file(), path);
  EXPECT_FALSE(std::filesystem::exists(path));
}

}  // namespace

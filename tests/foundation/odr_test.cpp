#include <gtest/gtest.h>

#include <ckpt/ckpt.hpp>

#include "odr_units.hpp"

namespace {

TEST(Odr, BothUnitsShareOneCodecRegistry) {
  EXPECT_EQ(odr_units::registry_address_in_a(), odr_units::registry_address_in_b());
  odr_units::register_identity_codec_in_a("odr-identity");
  EXPECT_TRUE(odr_units::registry_in_b_contains("odr-identity"));
  EXPECT_EQ(odr_units::round_trip_in_b("odr-identity", "bytes that cross units"), "bytes that cross units");
}

TEST(Odr, ErrorThrownInOneUnitIsCaughtByItsBaseInAnother) {
  try {
    odr_units::throw_format_error_in_b("model.ckpt");
    FAIL() << "nothing was thrown";
  } catch (const ckpt::Error& error) {
    EXPECT_NE(dynamic_cast<const ckpt::FormatError*>(&error), nullptr);
    EXPECT_EQ(error.id(), ckpt::ErrorId::format_truncated);
    EXPECT_EQ(error.file(), "model.ckpt");
  }
}

}  // namespace

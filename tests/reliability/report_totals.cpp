// Prints the totals of every count the tests reported, after the last test.

#include <gtest/gtest.h>

#include "report.hpp"

namespace {

class TotalsReport : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [what, count] : ckpt::test::totals()) {
      std::cout << "[reliability] total " << what << ": " << count << std::endl;
    }
  }
};

const auto* const totals_report = ::testing::AddGlobalTestEnvironment(new TotalsReport);

}  // namespace

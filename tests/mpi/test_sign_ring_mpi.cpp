// The sign-bit ring all-reduces on MpiBackend under mpirun with 1, 2, 3, 4 and 8 ranks: Marsit
// against the host recomputation of its masks, the cascade against its host replay (0 wrong).
#include <gtest/gtest.h>

#include "../common/sign_ring_checks.hpp"
#include "mpi_test.hpp"

namespace {

using sparcol::test::world;

std::uint64_t shared_seed() {
  static std::uint64_t seed = [] {
    std::uint64_t s = sparcol::test::test_seed();
    world().broadcast(&s, sizeof s, 0);
    return s;
  }();
  return seed;
}

class MpiSignRing : public sparcol::test::MpiTest, public ::testing::WithParamInterface<std::uint64_t> {};

TEST_P(MpiSignRing, Marsit) {
  const auto res = sparcol::test::check_marsit(world(), GetParam(), shared_seed(), 3);
  EXPECT_EQ(res.wrong, 0u) << res.first << " (seed " << shared_seed() << ")";
}

TEST_P(MpiSignRing, Cascade) {
  const auto res = sparcol::test::check_sign_cascade(world(), GetParam(), shared_seed());
  EXPECT_EQ(res.wrong, 0u) << res.first << " (seed " << shared_seed() << ")";
}

INSTANTIATE_TEST_SUITE_P(Sizes, MpiSignRing, ::testing::Values(1, 100, 1001, 65537),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

}  // namespace

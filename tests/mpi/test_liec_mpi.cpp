// LIEC's sharded server (coll/liec_allreduce.hpp) on MpiBackend under mpirun with 1, 2, 3, 4 and 8
// ranks: both phases against the host reference, sparse and dense payloads (0 wrong).
#include <gtest/gtest.h>

#include <tuple>

#include "../common/liec_checks.hpp"
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

class MpiLiec : public sparcol::test::MpiTest,
                public ::testing::WithParamInterface<std::tuple<std::uint64_t, int>> {};

TEST_P(MpiLiec, EqualsHostReference) {
  const std::uint64_t n = std::get<0>(GetParam());
  const int mode = std::get<1>(GetParam());
  const bool su = mode != 1 && mode != 3, sd = mode != 1 && mode != 2;
  const int pu = mode == 0 ? 10 : (mode == 4 ? 0 : 100), pd = mode == 0 ? 30 : (mode == 4 ? 0 : 100);
  const auto res = sparcol::test::check_liec(world(), n, su, sd, pu, pd, shared_seed());
  EXPECT_EQ(res.wrong, 0u) << res.first << " (seed " << shared_seed() << ")";
}

// Modes: 0 sparse, 1 dense, 2 sparse up / dense down, 3 dense up / sparse down, 4 sparse with k = 0.
INSTANTIATE_TEST_SUITE_P(Sizes, MpiLiec,
                         ::testing::Combine(::testing::Values(1, 5, 1001, 65537), ::testing::Range(0, 5)),
                         [](const auto& p) {
                           return "n" + std::to_string(std::get<0>(p.param)) + "_mode" +
                                  std::to_string(std::get<1>(p.param));
                         });

}  // namespace

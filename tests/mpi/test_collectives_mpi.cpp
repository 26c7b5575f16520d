// The collective checks of tests/common on MpiBackend, under mpirun with 1, 2, 3, 4 and 8 ranks.
#include <gtest/gtest.h>

#include "../common/coll_checks.hpp"
#include "mpi_test.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/core/error.hpp"

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

std::string seed_note() {
  return " (seed " + std::to_string(shared_seed()) +
         "; rerun with SPARCOL_TEST_SEED=" + std::to_string(shared_seed()) + ")";
}

class MpiColl : public sparcol::test::MpiTest, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(MpiColl, RingAllreduce) {
  const auto res = sparcol::test::check_ring_allreduce(world(), GetParam(), shared_seed());
  EXPECT_EQ(res.wrong, 0u) << res.first << seed_note();
}

TEST_P(MpiColl, RbgsAllreduce) {
  const std::size_t n = GetParam();
  for (std::size_t k : sparcol::test::rbgs_ks(n)) {
    const auto res = sparcol::test::check_rbgs_allreduce(world(), n, k, shared_seed(), true);
    EXPECT_EQ(res.wrong, 0u) << "k=" << k << ": " << res.first << seed_note();
  }
}

TEST_P(MpiColl, SparseAllgather) {
  const std::size_t n = GetParam();
  for (std::size_t max_k : sparcol::test::sparse_ks(n)) {
    const auto res = sparcol::test::check_sparse_allgather(world(), n, max_k, shared_seed());
    EXPECT_EQ(res.wrong, 0u) << "max_k=" << max_k << ": " << res.first << seed_note();
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, MpiColl,
                         ::testing::ValuesIn(sparcol::test::sized(
                             {0, 1, 7, 13, 1009, 65537, std::size_t{1} << 20, std::size_t{1} << 24})),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

// The sign all-gather, mean and majority vote against an oracle from the inputs' formula, up to 2^20
// elements (its host decoders and oracle cost n K per rank; 2^24 runs on LoopbackBackend).
class MpiSign : public sparcol::test::MpiTest, public ::testing::WithParamInterface<std::size_t> {};

TEST_P(MpiSign, SignAllgather) {
  const auto res = sparcol::test::check_sign_allgather(world(), GetParam(), shared_seed());
  EXPECT_EQ(res.wrong, 0u) << res.first << seed_note();
}

INSTANTIATE_TEST_SUITE_P(Sizes, MpiSign,
                         ::testing::ValuesIn(sparcol::test::sized({0, 1, 7, 13, 1009, 65537,
                                                                   std::size_t{1} << 20})),
                         [](const auto& p) { return "n" + std::to_string(p.param); });

class MpiMismatch : public sparcol::test::MpiTest {};

TEST_F(MpiMismatch, DifferentSizesAreNamedOnEveryRank) {
  if (world().size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  const int last = world().size() - 1;
  std::vector<float> v(world().rank() == last ? 101 : 100, 1.0f);
  try {
    sparcol::coll::RingAllreduce(world(), v.size()).run(v.data());
    ADD_FAILURE() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("count=101"), std::string::npos) << e.what();
  }
}

TEST_F(MpiMismatch, DifferentOpsAreNamedOnEveryRank) {
  if (world().size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  std::vector<float> v(100, 1.0f);
  try {
    if (world().rank() == 0) {
      sparcol::coll::RbgsAllreduce(world(), 100, 10).run(v.data(), 1, 1);
    } else {
      std::vector<sparcol::Index> idx{1};
      std::vector<float> val{1};
      sparcol::coll::SparseAllgather(world(), 100).run({idx, val}, 1);
    }
    ADD_FAILURE() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("rbgs_allreduce"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("sparse_allgather"), std::string::npos) << e.what();
  }
}

TEST_F(MpiMismatch, DifferentSeedsAreNamed) {
  if (world().size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  std::vector<float> v(1000, 1.0f);
  try {
    sparcol::coll::RbgsAllreduce(world(), 1000, 10).run(v.data(), world().rank() == 1 ? 99 : 1, 4);
    ADD_FAILURE() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("seed=99"), std::string::npos) << e.what();
  }
}

}  // namespace

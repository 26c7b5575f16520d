// The collective checks of tests/common on MpiBackend, under mpirun with 1, 2, 3, 4 and 8 ranks, and
// who a timeout blames when the silent rank is not the one waited for (a chain or a cycle of waits).
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

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

// Who is to blame for a timeout (docs/reliability.md): rank 0 waits for rank 1, which waits for rank 2,
// which computes (answers nothing) for 6 s. Rank 0's timeout must follow the chain to rank 2. On a
// duplicate, so that the questions and answers left over stay off the world's communicator.
class MpiTimeout : public sparcol::test::MpiTest {};

TEST_F(MpiTimeout, AChainOfWaitsNamesTheRankAtItsEnd) {
  if (world().size() < 3) GTEST_SKIP() << "needs at least 3 ranks";
  auto b = world().duplicate();
  char got = 0, token = 1;
  if (b->rank() == 0) {
    b->set_timeout(std::chrono::seconds(2));
    auto q = b->irecv(&got, 1, 1, 7);
    try {
      b->wait(q);
      ADD_FAILURE() << "expected a timeout";
    } catch (const sparcol::Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kTimeout) << m;
      EXPECT_NE(m.find("a message from rank 1"), std::string::npos) << m;
      EXPECT_NE(m.find("rank 1 is itself waiting"), std::string::npos) << m;
      EXPECT_NE(m.find("for rank 2, which does not answer: rank 2 is dead, stopped"), std::string::npos) << m;
    }
    b->set_timeout(std::chrono::seconds(60));
    b->wait(q = b->isend(&token, 1, 1, 8));  // release rank 1's second receive
  } else if (b->rank() == 1) {
    auto q = b->irecv(&got, 1, 2, 7);
    b->wait(q);
    b->wait(q = b->irecv(&got, 1, 0, 8));
  } else if (b->rank() == 2) {
    std::this_thread::sleep_for(std::chrono::seconds(6));
    auto q = b->isend(&token, 1, 1, 7);
    b->wait(q);
  }
  b->barrier();
}

TEST_F(MpiTimeout, ACycleOfWaitsIsNamedAsOne) {
  if (world().size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  auto b = world().duplicate();
  char got = 0, token = 1;
  if (b->rank() == 0) {
    b->set_timeout(std::chrono::seconds(2));
    auto q = b->irecv(&got, 1, 1, 7);
    try {
      b->wait(q);
      ADD_FAILURE() << "expected a timeout";
    } catch (const sparcol::Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("rank 1 is itself waiting"), std::string::npos) << m;
      EXPECT_NE(m.find("for rank 0: the ranks wait for each other in a cycle"), std::string::npos) << m;
    }
    b->set_timeout(std::chrono::seconds(60));
    b->wait(q = b->isend(&token, 1, 1, 9));  // what rank 1 waits for
  } else if (b->rank() == 1) {
    auto q = b->irecv(&got, 1, 0, 9);
    b->wait(q);
  }
  b->barrier();
}

}  // namespace

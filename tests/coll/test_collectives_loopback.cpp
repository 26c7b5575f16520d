// Every collective on LoopbackBackend (threads as ranks), swept over world sizes 1..8 and counts
// {0, 1, 7, primes, not divisible by the rank count, 2^20}, plus 2^24 on a few world sizes.
#include <gtest/gtest.h>

#include <tuple>

#include <cmath>
#include <limits>
#include "../common/coll_checks.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"

using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using sparcol::test::CheckResult;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

std::string seed_note() {
  return " (seed " + std::to_string(kSeed) + "; rerun with SPARCOL_TEST_SEED=" + std::to_string(kSeed) + ")";
}

template <class F>
CheckResult run_all(int ranks, F&& check) {
  std::vector<CheckResult> per_rank(static_cast<std::size_t>(ranks));
  LoopbackWorld::spawn(ranks, [&](Backend& b) { per_rank[static_cast<std::size_t>(b.rank())] = check(b); });
  CheckResult all;
  for (const auto& r : per_rank) all.merge(r);
  return all;
}

class LoopbackColl : public ::testing::TestWithParam<std::tuple<int, std::size_t>> {};

// "ranks<K>_n<count>", the name of every instantiation below.
std::string sweep_name(const ::testing::TestParamInfo<std::tuple<int, std::size_t>>& p) {
  return "ranks" + std::to_string(std::get<0>(p.param)) + "_n" + std::to_string(std::get<1>(p.param));
}

TEST_P(LoopbackColl, RingAllreduce) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t count = std::get<1>(GetParam());
  const auto res =
      run_all(ranks, [&](Backend& b) { return sparcol::test::check_ring_allreduce(b, count, kSeed); });
  EXPECT_EQ(res.wrong, 0u) << res.first << seed_note();
}

TEST_P(LoopbackColl, RbgsAllreduce) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t count = std::get<1>(GetParam());
  // k = 0, k = n, a wrapping block of half the vector, and a 1% block.
  for (std::size_t k : sparcol::test::rbgs_ks(count)) {
    const auto res = run_all(
        ranks, [&](Backend& b) { return sparcol::test::check_rbgs_allreduce(b, count, k, kSeed, true); });
    EXPECT_EQ(res.wrong, 0u) << "k=" << k << ": " << res.first << seed_note();
  }
}

TEST_P(LoopbackColl, SparseAllgather) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t count = std::get<1>(GetParam());
  for (std::size_t max_k : sparcol::test::sparse_ks(count)) {
    const auto res = run_all(
        ranks, [&](Backend& b) { return sparcol::test::check_sparse_allgather(b, count, max_k, kSeed); });
    EXPECT_EQ(res.wrong, 0u) << "max_k=" << max_k << ": " << res.first << seed_note();
  }
}

INSTANTIATE_TEST_SUITE_P(Sweep, LoopbackColl,
                         ::testing::Combine(::testing::Range(1, 9),
                                            ::testing::ValuesIn(sparcol::test::sized(
                                                {0, 1, 7, 13, 1009, 65537, std::size_t{1} << 20}))),
                         sweep_name);

INSTANTIATE_TEST_SUITE_P(Large, LoopbackColl,
                         ::testing::Combine(::testing::Values(1, 3, 8),
                                            ::testing::ValuesIn(sparcol::test::sized({std::size_t{1}
                                                                                      << 24}))),
                         sweep_name);

// The sign all-gather, mean and majority vote against an oracle from the inputs' formula: the same
// sweep, with 2^24 on 1 and 3 ranks only (its host decoders and oracle cost n K per rank, and the
// ranks share the process: 8 ranks at 2^24 take minutes on 2 cores).
class LoopbackSign : public LoopbackColl {};

TEST_P(LoopbackSign, SignAllgather) {
  const int ranks = std::get<0>(GetParam());
  const std::size_t count = std::get<1>(GetParam());
  const auto res =
      run_all(ranks, [&](Backend& b) { return sparcol::test::check_sign_allgather(b, count, kSeed); });
  EXPECT_EQ(res.wrong, 0u) << res.first << seed_note();
}

INSTANTIATE_TEST_SUITE_P(Sweep, LoopbackSign,
                         ::testing::Combine(::testing::Range(1, 9),
                                            ::testing::ValuesIn(sparcol::test::sized(
                                                {0, 1, 7, 13, 1009, 65537, std::size_t{1} << 20}))),
                         sweep_name);

INSTANTIATE_TEST_SUITE_P(Large, LoopbackSign,
                         ::testing::Combine(::testing::Values(1, 3),
                                            ::testing::ValuesIn(sparcol::test::sized({std::size_t{1}
                                                                                      << 24}))),
                         sweep_name);

// ---- Failure behaviour -------------------------------------------------------------------------

TEST(LoopbackMismatch, DifferentCountsAreNamed) {
  try {
    LoopbackWorld::spawn(3, [](Backend& b) {
      std::vector<float> v(b.rank() == 2 ? 11 : 10, 1.0f);
      sparcol::coll::RingAllreduce ring(b, v.size());
      ring.run(v.data());
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("count=11"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("count=10"), std::string::npos) << e.what();
  }
}

TEST(LoopbackMismatch, DifferentCollectivesAreNamed) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      std::vector<float> v(100, 1.0f);
      if (b.rank() == 0) {
        sparcol::coll::RbgsAllreduce(b, 100, 10).run(v.data(), 1, 5);
      } else {
        sparcol::coll::RingAllreduce(b, 100).run(v.data());
      }
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("rbgs_allreduce"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("ring_allreduce"), std::string::npos) << e.what();
  }
}

TEST(LoopbackMismatch, DifferentStepsOrSeedsAreNamed) {
  for (int which : {0, 1, 2}) {
    try {
      LoopbackWorld::spawn(4, [&](Backend& b) {
        std::vector<float> v(1000, 1.0f);
        const bool odd = b.rank() == 3;
        const std::uint64_t seed = (which == 0 && odd) ? 2 : 1;
        const std::uint64_t step = (which == 1 && odd) ? 9 : 8;
        const std::size_t k = (which == 2 && odd) ? 20 : 10;
        sparcol::coll::RbgsAllreduce(b, 1000, k).run(v.data(), seed, step);
      });
      FAIL() << "expected a mismatch error";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
      EXPECT_NE(std::string(e.what()).find("rank 3"), std::string::npos) << e.what();
    }
  }
}

TEST(LoopbackFailure, ThrowingRankTurnsIntoErrorsNotHangs) {
  // Rank 1 fails before the collective; the others must not hang in it.
  EXPECT_THROW(LoopbackWorld::spawn(4,
                                    [](Backend& b) {
                                      if (b.rank() == 1) throw std::runtime_error("injected failure");
                                      std::vector<float> v(1000, 1.0f);
                                      sparcol::coll::RingAllreduce(b, v.size()).run(v.data());
                                    }),
               std::runtime_error);
}

TEST(LoopbackFailure, SilentPeerTimesOut) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      b.set_timeout(std::chrono::milliseconds(200));
      if (b.rank() == 0) {
        float x = 0;
        auto req = b.irecv(&x, sizeof x, 1, 5);
        b.wait(req);
      }
      // rank 1 never sends
    });
    FAIL() << "expected a timeout";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kTimeout) << e.what();
    EXPECT_NE(std::string(e.what()).find("rank 1"), std::string::npos) << e.what();
  }
}

TEST(LoopbackFailure, SizeMismatchInPointToPoint) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      std::vector<float> v(8);
      if (b.rank() == 0) {
        auto r = b.isend(v.data(), 32, 1, 1);
        b.wait(r);
      } else {
        auto r = b.irecv(v.data(), 16, 0, 1);
        b.wait(r);
      }
    });
    FAIL() << "expected a mismatch";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
  }
}

TEST(LoopbackArgs, BadArgumentsAreRejected) {
  LoopbackWorld::spawn(2, [](Backend& b) {
    EXPECT_THROW(sparcol::coll::RbgsAllreduce(b, 10, 11), sparcol::Error);
    sparcol::coll::SparseAllgather sag(b, 10);
    std::vector<sparcol::Index> idx{3, 10};
    std::vector<float> val{1, 2};
    EXPECT_THROW(sag.run({idx, val}), sparcol::Error);  // index 10 out of range, caught before sending
    std::vector<float> one{1};
    EXPECT_THROW(sag.run({idx, one}), sparcol::Error);
  });
}

TEST(LoopbackColl, NaNPropagates) {
  LoopbackWorld::spawn(3, [](Backend& b) {
    std::vector<float> v(10, 1.0f);
    if (b.rank() == 1) v[4] = std::numeric_limits<float>::quiet_NaN();
    sparcol::coll::RingAllreduce(b, v.size()).run(v.data());
    EXPECT_TRUE(std::isnan(v[4]));
    EXPECT_EQ(v[3], 3.0f);
  });
}

}  // namespace

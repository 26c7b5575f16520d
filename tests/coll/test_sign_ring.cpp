// The sign-bit ring all-reduces (coll/sign_ring_allreduce.hpp): the word-parallel Bernoulli masks
// against a lane-by-lane reading of the same random words, their frequency, the merge's
// unbiasedness, and both collectives on LoopbackBackend with 1 to 8 ranks against host recomputation.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "../common/coll_checks.hpp"
#include "../common/sign_ring_checks.hpp"
#include "sparcol/coll/sign_ring_allreduce.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"

using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using sparcol::test::CheckResult;
namespace coll = sparcol::coll;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

// Lane l of mask_word, bit by bit: U = 0.R_0[l] R_1[l] ... against 1/q by exact long division.
bool naive_lane(std::uint64_t key, std::uint64_t word, std::uint64_t q, unsigned lane) {
  std::uint64_t rem = 1;
  for (unsigned t = 0; t < coll::kMarsitMaxLevels; ++t) {
    rem <<= 1;
    const bool pbit = rem >= q;
    if (pbit) rem -= q;
    const bool ubit = ((coll::marsit_random_word(key, word, t) >> lane) & 1u) != 0;
    if (ubit != pbit) return pbit;  // first difference decides U < p
    if (rem == 0) return false;     // p ends here: U >= p
  }
  return false;
}

TEST(MarsitMask, WordParallelEqualsLaneByLane) {
  for (std::uint64_t q : {1, 2, 3, 5, 7, 8}) {
    for (std::uint64_t w = 0; w < 200; ++w) {
      const std::uint64_t key = coll::marsit_key(kSeed, w, 1, 2, 3);
      const std::uint64_t lanes = coll::splitmix_mix(w + 17);  // an arbitrary subset of lanes
      const std::uint64_t m = coll::mask_word(key, w, q, lanes);
      for (unsigned l = 0; l < 64; ++l) {
        const bool want = ((lanes >> l) & 1u) != 0 && (q <= 1 || naive_lane(key, w, q, l));
        ASSERT_EQ(((m >> l) & 1u) != 0, want) << "q=" << q << " word " << w << " lane " << l;
      }
    }
  }
}

TEST(MarsitMask, FrequencyIsOneOverQ) {
  // 2^20 Bernoulli draws per q; the count's standard deviation is sqrt(N p (1-p)): 6 sigma bound.
  for (std::uint64_t q = 2; q <= 8; ++q) {
    const std::uint64_t words = 1u << 14;
    std::uint64_t ones = 0;
    for (std::uint64_t w = 0; w < words; ++w)
      ones += static_cast<std::uint64_t>(
          __builtin_popcountll(coll::mask_word(coll::marsit_key(kSeed, 9, 0, 0, 1), w, q, ~0ull)));
    const double N = 64.0 * static_cast<double>(words), p = 1.0 / static_cast<double>(q);
    EXPECT_NEAR(static_cast<double>(ones), N * p, 6 * std::sqrt(N * p * (1 - p))) << "q=" << q;
  }
}

TEST(MarsitMerge, IsUnbiased) {
  // K workers; element j has bit 1 on exactly j % (K+1) workers (which ones rotates with j). After
  // the ring's merges the bit is one worker's chosen uniformly, so P(1) = (j % (K+1)) / K. Summed
  // over T steps and all elements of a class, the count of ones has variance sum p(1-p) (independent
  // draws across steps and words; within a word lanes are independent too): 6 sigma bound.
  for (int K : {2, 3, 5, 8}) {
    const std::uint64_t n = 640, T = 300;
    std::vector<std::vector<std::uint32_t>> bits(
        static_cast<std::size_t>(K), std::vector<std::uint32_t>(sparcol::SignLayout::words_for(n)));
    for (std::uint64_t j = 0; j < n; ++j) {
      const int ones = static_cast<int>(j % static_cast<std::uint64_t>(K + 1));
      for (int i = 0; i < ones; ++i)
        bits[static_cast<std::size_t>((static_cast<int>(j) + i) % K)][j / 32] |= 1u << (j % 32);
    }
    std::vector<double> count(static_cast<std::size_t>(K) + 1, 0.0), trials(count.size(), 0.0);
    for (std::uint64_t t = 0; t < T; ++t) {
      const auto merged = coll::marsit_reference(bits, n, kSeed, t, 0);
      for (std::uint64_t j = 0; j < n; ++j) {
        const auto c = static_cast<std::size_t>(j % static_cast<std::uint64_t>(K + 1));
        count[c] += coll::SignLayout64::is_set(merged.data(), j) ? 1 : 0;
        trials[c] += 1;
      }
    }
    for (std::size_t c = 0; c < count.size(); ++c) {
      const double p = static_cast<double>(c) / K;
      const double sd = std::sqrt(trials[c] * p * (1 - p));
      EXPECT_NEAR(count[c], trials[c] * p, 6 * sd + 1e-9) << "K=" << K << " with " << c << " ones";
    }
  }
}

template <class F>
CheckResult run_all(int ranks, F&& check) {
  std::vector<CheckResult> per_rank(static_cast<std::size_t>(ranks));
  LoopbackWorld::spawn(ranks, [&](Backend& b) { per_rank[static_cast<std::size_t>(b.rank())] = check(b); });
  CheckResult all;
  for (const auto& r : per_rank) all.merge(r);
  return all;
}

class SignRing : public ::testing::TestWithParam<std::tuple<int, std::uint64_t>> {};

TEST_P(SignRing, MarsitEqualsHostRecomputation) {
  const int ranks = std::get<0>(GetParam());
  const std::uint64_t n = std::get<1>(GetParam());  // not a structured binding: lambdas capture it
  for (std::uint64_t step : {0, 1, 41}) {
    const auto res =
        run_all(ranks, [&](Backend& b) { return sparcol::test::check_marsit(b, n, kSeed, step); });
    EXPECT_EQ(res.wrong, 0u) << res.first << " (seed " << kSeed << ", step " << step << ")";
  }
}

TEST_P(SignRing, CascadeEqualsHostReplay) {
  const int ranks = std::get<0>(GetParam());
  const std::uint64_t n = std::get<1>(GetParam());
  const auto res = run_all(ranks, [&](Backend& b) { return sparcol::test::check_sign_cascade(b, n, kSeed); });
  EXPECT_EQ(res.wrong, 0u) << res.first << " (seed " << kSeed << ")";
}

// Sizes not divisible by 64 or by the rank count, fewer words than ranks, and a larger vector.
INSTANTIATE_TEST_SUITE_P(Loopback, SignRing,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5, 7, 8),
                                            ::testing::Values(0, 1, 63, 100, 1001, 65537)),
                         [](const auto& p) {
                           return "ranks" + std::to_string(std::get<0>(p.param)) + "_n" +
                                  std::to_string(std::get<1>(p.param));
                         });

TEST(SignRingMismatch, DifferentStepsAreNamed) {
  try {
    LoopbackWorld::spawn(3, [](Backend& b) {
      std::vector<std::uint32_t> w(4, 0u);
      coll::SignRingAllreduce ring(b, 100);
      ring.run(sparcol::SignBits{100, w, 1.0f}, 5, b.rank() == 1 ? 8 : 7, 0);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("sign_ring_allreduce"), std::string::npos) << e.what();
  }
}

TEST(SignRingMismatch, DifferentCountsAreNamed) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      const std::uint64_t n = b.rank() == 0 ? 100 : 101;
      std::vector<float> p(n, 1.0f);
      coll::SignCascadeAllreduce cas(b, n);
      cas.run(p, 0);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("count=101"), std::string::npos) << e.what();
  }
}

TEST(SignRingMismatch, WrongMessageSizeIsRefused) {
  LoopbackWorld::spawn(1, [](Backend& b) {
    std::vector<std::uint32_t> w(3, 0u);
    coll::SignRingAllreduce ring(b, 100);
    EXPECT_THROW(ring.run_agreed(sparcol::SignBits{100, w, 1.0f}, 0, 0, 0), sparcol::Error);
  });
}

}  // namespace

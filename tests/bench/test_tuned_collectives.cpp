// The algorithm options added while tuning the collectives for sparcol-bench, on LoopbackBackend:
// both all-reduce algorithms (ring, direct) and both sparse all-gather exchanges (ring, direct) forced
// explicitly at world sizes 1..8 and awkward counts (the default kAuto only ever exercises one of them
// per size), RBGS blocks that do and do not wrap (in-place vs packed path), the one-round fingerprint
// exchange, and the byte accounting each algorithm documents.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "sparcol/coll/agree.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"

namespace {

using sparcol::Index;
using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using Ring = sparcol::coll::RingAllreduce;
using Sparse = sparcol::coll::SparseAllgather;

// A fresh seed per process, printed with every failure (SPARCOL_TEST_SEED reproduces one).
std::uint64_t seed() {
  static const std::uint64_t s = []() -> std::uint64_t {
    if (const char* e = std::getenv("SPARCOL_TEST_SEED"); e != nullptr && *e != '\0')
      return std::strtoull(e, nullptr, 0);
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) | rd();
  }();
  return s;
}
std::string note() {
  return " [seed " + std::to_string(seed()) + ", SPARCOL_TEST_SEED reproduces it]";
}

// Non-integer values: sums are order-sensitive, so the direct algorithm's rank-order promise is
// tested bit for bit.
float value(int rank, std::uint64_t i) {
  const std::uint64_t h =
      sparcol::counter_u64(seed(), i, static_cast<std::uint32_t>(rank), sparcol::kStreamUser);
  return static_cast<float>(static_cast<std::int64_t>(h % 2000001) - 1000000) / 977.0f;
}

const int kRanks[] = {1, 2, 3, 4, 5, 8};
const std::size_t kCounts[] = {0, 1, 3, 7, 8, 1000, 4099, 65537};

// Runs fn on every rank of a loopback world of `ranks` and collects per-rank failure messages.
template <typename Fn>
std::vector<std::string> on_ranks(int ranks, Fn&& fn) {
  std::vector<std::string> failures(static_cast<std::size_t>(ranks));
  LoopbackWorld::spawn(ranks, [&](Backend& b) { failures[static_cast<std::size_t>(b.rank())] = fn(b); });
  std::vector<std::string> out;
  for (auto& f : failures)
    if (!f.empty()) out.push_back(f);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

TEST(TunedAllreduce, BothAlgorithmsSumExactlyAndAccountTheirBytes) {
  for (int K : kRanks) {
    for (std::size_t n : kCounts) {
      for (auto algo : {Ring::Algorithm::kRing, Ring::Algorithm::kDirect}) {
        const bool direct = algo == Ring::Algorithm::kDirect;
        const auto failures = on_ranks(K, [&](Backend& b) -> std::string {
          std::vector<float> v(n);
          for (std::size_t i = 0; i < n; ++i) v[i] = value(b.rank(), i);
          // Small pieces so that the ring splits segments into several messages.
          Ring ring(b, n, 64, algo);
          if (ring.algorithm() != algo) return "algorithm() does not report the forced algorithm";
          const auto sent0 = b.bytes_sent();
          ring.run_unchecked(v.data());
          if (b.bytes_sent() - sent0 != (K == 1 || n == 0 ? 0 : ring.bytes_sent_per_run()))
            return "rank " + std::to_string(b.rank()) + " sent " + std::to_string(b.bytes_sent() - sent0) +
                   " bytes, bytes_sent_per_run() says " + std::to_string(ring.bytes_sent_per_run());
          for (std::size_t i = 0; i < n; ++i) {
            // Direct sums in rank order: bit-identical to this loop. The ring's order differs, so
            // compare it with a tolerance of a few ulps of the largest partial sum.
            float want = 0;
            float scale = 0;
            for (int r = 0; r < K; ++r) {
              want += value(r, i);
              scale += std::fabs(value(r, i));
            }
            const bool ok = direct ? v[i] == want : std::fabs(v[i] - want) <= 4e-7f * scale * K;
            if (!ok)
              return "rank " + std::to_string(b.rank()) + " index " + std::to_string(i) + ": got " +
                     std::to_string(v[i]) + ", want " + std::to_string(want);
          }
          return "";
        });
        EXPECT_TRUE(failures.empty()) << "K=" << K << " n=" << n << (direct ? " direct" : " ring") << ":\n"
                                      << join(failures) << note();
      }
    }
  }
}

TEST(TunedAllreduce, AutoPicksDirectOnlyForShortVectorsOnFewRanks) {
  LoopbackWorld::spawn(4, [](Backend& b) {
    const std::size_t limit = Ring::kDirectMaxBytes / sizeof(float);
    EXPECT_EQ(Ring(b, limit).algorithm(), Ring::Algorithm::kDirect);
    EXPECT_EQ(Ring(b, limit + 1).algorithm(), Ring::Algorithm::kRing);
  });
  LoopbackWorld::spawn(Ring::kDirectMaxRanks + 1,
                       [](Backend& b) { EXPECT_EQ(Ring(b, 100).algorithm(), Ring::Algorithm::kRing); });
}

TEST(TunedAllreduce, ResultsAreBitIdenticalOnEveryRank) {
  for (auto algo : {Ring::Algorithm::kRing, Ring::Algorithm::kDirect}) {
    const int K = 5;
    const std::size_t n = 10007;
    std::vector<std::vector<float>> out(K);
    LoopbackWorld::spawn(K, [&](Backend& b) {
      std::vector<float> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = value(b.rank(), i);
      Ring(b, n, 1024, algo).run(v.data());
      out[static_cast<std::size_t>(b.rank())] = v;
    });
    for (int r = 1; r < K; ++r) EXPECT_EQ(out[static_cast<std::size_t>(r)], out[0]) << "rank " << r << note();
  }
}

TEST(TunedAllreduce, NanPropagatesWithoutHarm) {
  for (auto algo : {Ring::Algorithm::kRing, Ring::Algorithm::kDirect}) {
    LoopbackWorld::spawn(3, [&](Backend& b) {
      std::vector<float> v(100, 1.0f);
      if (b.rank() == 1) v[42] = std::nanf("");
      Ring(b, v.size(), 64, algo).run(v.data());
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i == 42) {
          EXPECT_TRUE(std::isnan(v[i]));
        } else {
          EXPECT_EQ(v[i], 3.0f) << i;
        }
      }
    });
  }
}

TEST(TunedRbgs, ContiguousAndWrappingBlocksAreSummedAndNothingElseChanges) {
  for (int K : {1, 2, 3, 4, 7}) {
    for (std::size_t n : {std::size_t{1}, std::size_t{10}, std::size_t{1000}, std::size_t{65536}}) {
      for (std::size_t k : {std::size_t{1}, n / 3 + 1, n}) {
        if (k > n) continue;
        // Steps with a contiguous block and with a wrapping one (the latter exist only for k > 1).
        std::uint64_t contiguous = 0, wrapping = 0;
        while (sparcol::rbgs_block(n, k, seed(), contiguous, 0).wrap_len() != 0) ++contiguous;
        bool have_wrap = false;
        for (std::uint64_t s = 0; s < 10000 && !have_wrap; ++s) {
          if (sparcol::rbgs_block(n, k, seed(), s, 0).wrap_len() != 0) {
            wrapping = s;
            have_wrap = true;
          }
        }
        std::vector<std::uint64_t> steps{contiguous};
        if (have_wrap) steps.push_back(wrapping);
        for (std::uint64_t step : steps) {
          const auto failures = on_ranks(K, [&](Backend& b) -> std::string {
            std::vector<float> v(n);
            for (std::size_t i = 0; i < n; ++i) v[i] = std::round(value(b.rank(), i));
            sparcol::coll::RbgsAllreduce rbgs(b, n, k);
            const auto blk = rbgs.run(v.data(), seed(), step, 0);
            for (std::size_t i = 0; i < n; ++i) {
              float want = std::round(value(b.rank(), i));
              if (blk.contains(i)) {
                want = 0;
                for (int r = 0; r < K; ++r) want += std::round(value(r, i));
              }
              if (v[i] != want)
                return "rank " + std::to_string(b.rank()) + " index " + std::to_string(i) + ": got " +
                       std::to_string(v[i]) + ", want " + std::to_string(want);
            }
            return "";
          });
          EXPECT_TRUE(failures.empty()) << "K=" << K << " n=" << n << " k=" << k << " step=" << step
                                        << (step == contiguous ? " (contiguous)" : " (wrapping)") << ":\n"
                                        << join(failures) << note();
        }
      }
    }
  }
}

// Rank r contributes (r * 7 + seed) % 5 pairs, rank 1 none: unequal and empty blocks.
std::size_t pairs_of(int rank, std::uint64_t n) {
  if (rank == 1 || n == 0) return 0;
  return static_cast<std::size_t>((static_cast<std::uint64_t>(rank) * 7 + seed()) % 5 + (rank == 0 ? 1 : 0));
}

TEST(TunedSparseAllgather, RingAndDirectGatherTheSamePairsAndAccountTheirBytes) {
  for (int K : kRanks) {
    for (std::uint64_t n : {std::uint64_t{0}, std::uint64_t{1}, std::uint64_t{50}, std::uint64_t{1} << 20}) {
      for (auto algo : {Sparse::Algorithm::kRing, Sparse::Algorithm::kDirect}) {
        const bool direct = algo == Sparse::Algorithm::kDirect;
        auto pairs = [&](int r, std::vector<Index>& idx, std::vector<float>& val) {
          const std::size_t k = pairs_of(r, n);
          idx.resize(k);
          val.resize(k);
          for (std::size_t j = 0; j < k; ++j) {
            idx[j] =
                static_cast<Index>(sparcol::counter_u64(seed(), j, static_cast<std::uint32_t>(r), 9) % n);
            val[j] = value(r, j);
          }
        };
        const auto failures = on_ranks(K, [&](Backend& b) -> std::string {
          std::vector<Index> idx;
          std::vector<float> val;
          pairs(b.rank(), idx, val);
          Sparse sag(b, n, 2, algo);
          sag.run({idx, val}, 3);
          std::uint64_t total = 0;
          for (int r = 0; r < K; ++r) {
            std::vector<Index> wi;
            std::vector<float> wv;
            pairs(r, wi, wv);
            total += wi.size();
            const auto gi = sag.chunk(r).indices;
            const auto gv = sag.chunk(r).values;
            if (!std::equal(gi.begin(), gi.end(), wi.begin(), wi.end()) ||
                !std::equal(gv.begin(), gv.end(), wv.begin(), wv.end()))
              return "rank " + std::to_string(b.rank()) + " holds a wrong block from rank " +
                     std::to_string(r);
          }
          // Documented bytes: direct 8 k_r (K-1); ring 8 (sum k - k_right).
          const std::uint64_t want = K == 1 ? 0
                                            : (direct ? 8 * idx.size() * static_cast<std::uint64_t>(K - 1)
                                                      : 8 * (total - pairs_of((b.rank() + 1) % K, n)));
          if (sag.last_bytes_sent() != want)
            return "rank " + std::to_string(b.rank()) + " reports " + std::to_string(sag.last_bytes_sent()) +
                   " bytes sent, expected " + std::to_string(want);
          if (sag.last_bytes_recv() != (K == 1 ? 0 : 8 * (total - idx.size())) && direct)
            return "rank " + std::to_string(b.rank()) + " reports " + std::to_string(sag.last_bytes_recv()) +
                   " bytes received";
          return "";
        });
        EXPECT_TRUE(failures.empty()) << "K=" << K << " n=" << n << (direct ? " direct" : " ring") << ":\n"
                                      << join(failures) << note();
      }
    }
  }
}

TEST(TunedAgree, OneRoundExchangeGathersEveryRankAndCatchesMismatches) {
  for (int K : {1, 2, 3, 5, sparcol::coll::kSmallDirectMaxRanks, sparcol::coll::kSmallDirectMaxRanks + 1}) {
    LoopbackWorld::spawn(K, [&](Backend& b) {
      // Per-rank values reach every rank, in rank order, whichever exchange the world size selects.
      const auto locals = sparcol::coll::agree(
          b, sparcol::coll::CallSignature{sparcol::coll::CollOp::kUser, 10, 2, 3, 4, 5, 0},
          sparcol::coll::RankLocal{static_cast<std::uint64_t>(b.rank()) * 11, 0}, true);
      ASSERT_EQ(locals.size(), static_cast<std::size_t>(K));
      for (int r = 0; r < K; ++r)
        EXPECT_EQ(locals[static_cast<std::size_t>(r)].count, static_cast<std::uint64_t>(r) * 11);
    });
    if (K == 1) continue;
    // The last rank asks for another count: every rank throws, with kMismatch from the ranks that
    // compared (on loopback a rank may instead see the world aborted by a faster one: kBackend).
    std::mutex mu;
    int mismatches = 0, throws = 0;
    EXPECT_THROW(LoopbackWorld::spawn(K,
                                      [&](Backend& b) {
                                        try {
                                          sparcol::coll::agree(
                                              b, sparcol::coll::CallSignature{sparcol::coll::CollOp::kUser,
                                                                              b.rank() == K - 1 ? 11u : 10u,
                                                                              2, 3, 4, 5, 0});
                                        } catch (const sparcol::Error& e) {
                                          std::lock_guard<std::mutex> lock(mu);
                                          ++throws;
                                          if (e.code() == sparcol::ErrorCode::kMismatch) ++mismatches;
                                          throw;
                                        }
                                      }),
                 sparcol::Error);
    EXPECT_EQ(throws, K) << "K=" << K;
    EXPECT_GE(mismatches, 1) << "K=" << K;
  }
}

}  // namespace

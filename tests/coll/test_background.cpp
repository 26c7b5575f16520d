// Communication behind computation on LoopbackBackend (include/sparcol/coll/background.hpp): the
// ring all-reduce, the sparse all-gather and RBGS run on a progress thread give bitwise the blocking
// results on 1-8 ranks while the caller uses its own backend meanwhile; a silent peer is the
// collective's named timeout and a failed peer a backend error, rethrown by wait(), with no thread
// left hanging; and the duplicate's context is separate from the original's.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <numeric>
#include <thread>
#include <vector>

#include "sparcol/coll/background.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"

using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using Vec = std::vector<float>;

namespace {

Vec random_vec(int rank, std::size_t n, std::uint32_t stream) {
  sparcol::CounterRng rng(2024, sparcol::kStreamUser, static_cast<std::uint32_t>(rank) * 100 + stream);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(Background, CollectivesBehindComputationAreBitwiseTheBlockingOnes) {
  for (int K = 1; K <= 8; ++K) {
    SCOPED_TRACE("K = " + std::to_string(K));
    LoopbackWorld::spawn(K, [&](Backend& b) {
      const std::size_t n = 3000 + static_cast<std::size_t>(K);
      sparcol::coll::Background bg(b);
      // Ring all-reduce (both the direct and the ring algorithm).
      for (const auto alg : {sparcol::coll::RingAllreduce::Algorithm::kRing,
                             sparcol::coll::RingAllreduce::Algorithm::kDirect}) {
        Vec a = random_vec(b.rank(), n, 1), c = a;
        sparcol::coll::RingAllreduce blocking(b, n, 4096, alg);
        sparcol::coll::RingAllreduce behind(bg.backend(), n, 4096, alg);
        bg.start([&](Backend&) { behind.run(c.data(), 7); });
        // Meanwhile the caller runs its own collectives on the original backend.
        blocking.run(a.data(), 7);
        Vec other = random_vec(b.rank(), 100, 2);
        sparcol::coll::ring_allreduce_sum(b, other.data(), other.size());
        bg.wait();
        EXPECT_TRUE(same_bits(a, c)) << "ring all-reduce, rank " << b.rank();
      }
      // Sparse all-gather: every rank's top pairs, summed in rank order.
      {
        const std::size_t k = 50 + static_cast<std::size_t>(b.rank());  // pair counts differ per rank
        std::vector<sparcol::Index> idx(k);
        Vec val = random_vec(b.rank(), k, 3);
        for (std::size_t i = 0; i < k; ++i)
          idx[i] = static_cast<sparcol::Index>((i * 37 + b.rank() * 11) % n);
        const sparcol::SparseChunk pairs{{idx.data(), k}, {val.data(), k}};
        sparcol::coll::SparseAllgather blocking(b, n), behind(bg.backend(), n);
        bg.start([&](Backend&) { behind.run(pairs, 3); });
        blocking.run(pairs, 3);
        bg.wait();
        Vec a(n), c(n);
        blocking.sum_into(a.data(), static_cast<float>(K));
        behind.sum_into(c.data(), static_cast<float>(K));
        EXPECT_TRUE(same_bits(a, c)) << "sparse all-gather, rank " << b.rank();
        EXPECT_EQ(blocking.last_bytes_sent(), behind.last_bytes_sent());
      }
      // RBGS: the shared random block, all-reduced.
      {
        Vec a = random_vec(b.rank(), n, 4), c = a;
        sparcol::coll::RbgsAllreduce blocking(b, n, n / 10), behind(bg.backend(), n, n / 10);
        bg.start([&](Backend&) { behind.run(c.data(), 99, 5); });
        blocking.run(a.data(), 99, 5);
        bg.wait();
        EXPECT_TRUE(same_bits(a, c)) << "rbgs, rank " << b.rank();
      }
    });
  }
}

TEST(Background, ASilentPeerIsTheNamedTimeoutAndNothingHangs) {
  // Rank 2 never starts its part of the all-reduce: ranks 0 and 1 time out in the background and
  // wait() rethrows the collective's kTimeout naming the operation; every thread ends.
  std::vector<std::string> errors(3);
  LoopbackWorld::spawn(3, [&](Backend& b) {
    b.set_timeout(std::chrono::milliseconds(300));
    sparcol::coll::Background bg(b);
    if (b.rank() == 2) return;
    Vec v(1000, 1.0f);
    sparcol::coll::RingAllreduce ring(bg.backend(), v.size());
    bg.start([&](Backend&) { ring.run(v.data()); });
    try {
      bg.wait();
      ADD_FAILURE() << "rank " << b.rank() << ": expected a timeout";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kTimeout) << e.what();
      errors[static_cast<std::size_t>(b.rank())] = e.what();
    }
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_NE(errors[static_cast<std::size_t>(r)].find("rank"), std::string::npos) << errors[r];
  }
}

TEST(Background, AFailedPeerEndsTheJobInFlight) {
  // Rank 1 fails (throws) while the others' all-reduce is in flight: the world and its duplicates
  // are aborted, the job ends with the backend error, and LoopbackWorld::run reports rank 1's error.
  try {
    LoopbackWorld::spawn(3, [&](Backend& b) {
      b.set_timeout(std::chrono::milliseconds(60000));  // the abort, not the timeout, must end it
      sparcol::coll::Background bg(b);
      if (b.rank() == 1) throw sparcol::Error(sparcol::ErrorCode::kIo, 1, "rank 1 gave up");
      Vec v(1000, 1.0f);
      sparcol::coll::RingAllreduce ring(bg.backend(), v.size());
      bg.start([&](Backend&) { ring.run(v.data()); });
      EXPECT_THROW(bg.wait(), sparcol::Error);
    });
    ADD_FAILURE() << "expected rank 1's error";
  } catch (const sparcol::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 1 gave up"), std::string::npos) << e.what();
  }
}

TEST(Background, AWaitEndingInOneThreadKeepsAnotherThreadsWaitRecorded) {
  // What a signal handler prints (comm::waiting_activity): a progress thread still waits on the ring
  // all-reduce for rank 2 while the main thread's own wait (a barrier) ends; the record must stay.
  using namespace sparcol::comm;
  ASSERT_EQ(waiting_activity(), nullptr);
  std::atomic<int> phase{0};
  std::thread progress([&] {
    ActivityScope scope(kTagRing, 2);
    phase.store(1);
    while (phase.load() < 2) std::this_thread::yield();
  });
  while (phase.load() < 1) std::this_thread::yield();
  {
    ActivityScope scope(kTagBarrier, 1);
    ASSERT_NE(waiting_activity(), nullptr);
  }
  const Activity* a = waiting_activity();
  ASSERT_NE(a, nullptr) << "the main thread's wait ended and erased the progress thread's";
  EXPECT_EQ(a->tag.load(), kTagRing);
  EXPECT_EQ(a->peer.load(), 2);
  phase.store(2);
  progress.join();
  EXPECT_EQ(waiting_activity(), nullptr);
  // A thread's record is released when it ends: many threads in turn never run out of records.
  for (int i = 0; i < 4 * kActivitySlots; ++i) {
    std::thread([i] {
      ActivityScope scope(kTagSparse, i);
      const Activity* w = waiting_activity();
      EXPECT_TRUE(w != nullptr && w->peer.load() == i) << "thread " << i;
      EXPECT_NE(&current_activity(), &activity_slot(kActivitySlots - 1))
          << "thread " << i << " found no free record";
    }).join();
  }
  EXPECT_EQ(waiting_activity(), nullptr);
}

TEST(Background, StartWhileInFlightIsRefused) {
  LoopbackWorld::spawn(1, [&](Backend& b) {
    sparcol::coll::Background bg(b);
    Vec v(10, 1.0f);
    sparcol::coll::RingAllreduce ring(bg.backend(), v.size());
    bg.start([&](Backend&) { ring.run(v.data()); });
    EXPECT_THROW(bg.start([](Backend&) {}), sparcol::Error);
    bg.wait();
    EXPECT_FALSE(bg.in_flight());
    EXPECT_EQ(v[0], 1.0f);
    EXPECT_EQ(bg.wait(), 0.0);  // nothing in flight
  });
}

}  // namespace

// Communication behind computation under mpirun (coll/background.hpp), MPI initialised at
// MPI_THREAD_MULTIPLE: the ring all-reduce, the sparse all-gather and RBGS on the progress thread's
// duplicated communicator give bitwise the blocking results while the main thread runs collectives
// of its own on the original one; CoCoD-SGD's tau = 1 round is the average moved by the own step.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "mpi_test.hpp"
#include "sparcol/coll/background.hpp"
#include "sparcol/coll/rbgs_allreduce.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/coll/sparse_allgather.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::test::world;
using Vec = std::vector<float>;

namespace {

class MpiOverlap : public sparcol::test::MpiTest {};

Vec random_vec(int rank, std::size_t n, std::uint32_t stream) {
  sparcol::CounterRng rng(4242, sparcol::kStreamUser, static_cast<std::uint32_t>(rank) * 100 + stream);
  Vec v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_F(MpiOverlap, ThreadLevelIsMultiple) {
  EXPECT_EQ(world().concurrent_use_reason(), "");
}

TEST_F(MpiOverlap, CollectivesBehindComputationAreBitwiseTheBlockingOnes) {
  auto& b = world();
  sparcol::coll::Background bg(b);
  for (const std::size_t n : {std::size_t{1}, std::size_t{1000}, std::size_t{300001}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    Vec a = random_vec(b.rank(), n, 1), c = a;
    sparcol::coll::RingAllreduce blocking(b, n), behind(bg.backend(), n);
    bg.start([&](sparcol::comm::Backend&) { behind.run(c.data(), 1); });
    Vec other = random_vec(b.rank(), 777, 2);  // the main thread's own collective meanwhile
    sparcol::coll::ring_allreduce_sum(b, other.data(), other.size());
    blocking.run(a.data(), 1);
    bg.wait();
    EXPECT_TRUE(same_bits(a, c)) << "ring all-reduce";

    const std::size_t k = std::max<std::size_t>(1, n / 50) + static_cast<std::size_t>(b.rank() % 2);
    std::vector<sparcol::Index> idx(k);
    Vec val = random_vec(b.rank(), k, 3);
    for (std::size_t i = 0; i < k; ++i) idx[i] = static_cast<sparcol::Index>((i * 31 + b.rank() * 7) % n);
    const sparcol::SparseChunk pairs{{idx.data(), k}, {val.data(), k}};
    sparcol::coll::SparseAllgather sb(b, n), sf(bg.backend(), n);
    bg.start([&](sparcol::comm::Backend&) { sf.run(pairs, 2); });
    sb.run(pairs, 2);
    bg.wait();
    Vec sa(n), sc(n);
    sb.sum_into(sa.data(), static_cast<float>(b.size()));
    sf.sum_into(sc.data(), static_cast<float>(b.size()));
    EXPECT_TRUE(same_bits(sa, sc)) << "sparse all-gather";

    Vec ra = random_vec(b.rank(), n, 4), rc = ra;
    sparcol::coll::RbgsAllreduce rb(b, n, std::max<std::size_t>(1, n / 8)),
        rf(bg.backend(), n, std::max<std::size_t>(1, n / 8));
    bg.start([&](sparcol::comm::Backend&) { rf.run(rc.data(), 5, 3); });
    rb.run(ra.data(), 5, 3);
    bg.wait();
    EXPECT_TRUE(same_bits(ra, rc)) << "rbgs";
  }
}

TEST_F(MpiOverlap, CocodTauOneIsTheAverageMovedByTheOwnStep) {
  auto& b = world();
  const std::uint64_t d = 33;
  sparcol::optim::OptimConfig c;
  c.method = "cocod-sgd";
  c.period = 1;
  c.momentum = 0.0;
  auto opt = sparcol::optim::make_optimizer(b, sparcol::optim::Layout::flat(d), c);
  Vec x = random_vec(0, d, 9);  // the same start on every rank
  for (std::uint64_t t = 0; t < 5; ++t) {
    const auto z = opt->gradient_point(x, 0.1);
    Vec g = random_vec(b.rank(), d, static_cast<std::uint32_t>(10 + t));
    for (std::size_t i = 0; i < d; ++i) g[i] += z[i];
    // Expected: mean_k x_k - eta g_k (the mean from a blocking all-reduce of the current models).
    Vec mean = x;
    sparcol::coll::ring_allreduce_sum(b, mean.data(), d);
    Vec want(d);
    for (std::size_t i = 0; i < d; ++i) want[i] = mean[i] / static_cast<float>(b.size()) - 0.1f * g[i];
    opt->step(x, g, t, 0.1);
    for (std::size_t i = 0; i < d; ++i) ASSERT_NEAR(x[i], want[i], 1e-5 * (1 + std::abs(want[i]))) << t;
  }
}

}  // namespace

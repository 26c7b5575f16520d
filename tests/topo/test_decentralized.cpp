// The decentralized methods on LoopbackBackend (ALGORITHMS.md 10.4, 10.5): D-PSGD on the complete
// graph is all-reduce averaging; RelaySum gives the exact mean after diameter calls and the fill
// before; RelaySGD's update variant adds the mean update once information has crossed the tree;
// PowerGossip preserves the mean of the models and with full rank is D-PSGD's gossip.
#include <gtest/gtest.h>

#include <cmath>

#include "../common/coll_checks.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/topo/relay.hpp"

namespace optim = sparcol::optim;
namespace topo = sparcol::topo;
using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;

namespace {

std::vector<float> random_vector(std::uint64_t seed, std::uint32_t who, std::size_t n) {
  sparcol::CounterRng rng(seed, 77, who);
  std::vector<float> v(n);
  for (auto& e : v) e = static_cast<float>(rng.normal());
  return v;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double d = 0;
  for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, std::abs(static_cast<double>(a[i]) - b[i]));
  return d;
}

// Hop distances from s on g.
std::vector<int> hops(const topo::Graph& g, int s) {
  std::vector<int> d(static_cast<std::size_t>(g.n), -1);
  std::vector<int> q{s};
  d[static_cast<std::size_t>(s)] = 0;
  for (std::size_t h = 0; h < q.size(); ++h)
    for (int v : g.neighbors[static_cast<std::size_t>(q[h])])
      if (d[static_cast<std::size_t>(v)] < 0) {
        d[static_cast<std::size_t>(v)] = d[static_cast<std::size_t>(q[h])] + 1;
        q.push_back(v);
      }
  return d;
}

const std::uint64_t kSeed = sparcol::test::test_seed();

TEST(Dpsgd, CompleteGraphWithUniformWeightsIsAllReduceAveraging) {
  const std::size_t n = 1001;
  for (int K : {1, 2, 3, 5, 8}) {
    std::vector<double> err(static_cast<std::size_t>(K), 0.0);
    LoopbackWorld::spawn(K, [&](Backend& b) {
      optim::OptimConfig c;
      c.method = "dpsgd";
      c.topology = "complete";
      c.momentum = 0.9;
      auto opt = optim::make_optimizer(b, optim::Layout::flat(n), c);
      auto x = random_vector(kSeed, static_cast<std::uint32_t>(b.rank()), n);
      const auto g = random_vector(kSeed + 1, static_cast<std::uint32_t>(b.rank()), n);
      std::vector<float> ref = x, m(n, 0.0f);
      for (std::uint64_t t = 0; t < 4; ++t) {
        std::vector<float> mean = ref;
        b.allreduce_sum(mean.data(), n);  // the reference: all-reduce average, then the local step
        for (std::size_t i = 0; i < n; ++i) {
          m[i] = 0.9f * m[i] + g[i];
          ref[i] = mean[i] / static_cast<float>(K) - 0.05f * m[i];
        }
        opt->step(x, g, t, 0.05);
        err[static_cast<std::size_t>(b.rank())] =
            std::max(err[static_cast<std::size_t>(b.rank())], max_diff(x, ref));
      }
    });
    for (double e : err) EXPECT_LT(e, 1e-5) << K << " ranks";
  }
}

TEST(RelaySum, ExactMeanAfterDiameterCallsAndTheFillBefore) {
  const std::size_t n = 37;
  for (int K = 1; K <= 8; ++K) {
    for (const std::string tree : {"chain", "binary-tree", "reversed-binary-tree"}) {
      const topo::Graph g =
          tree == "reversed-binary-tree" ? topo::double_binary_trees(K)[1] : topo::make_topology(tree, K);
      const int diam = topo::diameter(g);
      std::vector<double> err(static_cast<std::size_t>(K), 0.0);
      LoopbackWorld::spawn(K, [&](Backend& b) {
        auto exec = sparcol::device::Exec::host();
        topo::RelaySum relay(b, g, exec, n);
        const auto fill = random_vector(kSeed, 999, n);
        std::vector<std::vector<float>> v;
        for (int r = 0; r < K; ++r) v.push_back(random_vector(kSeed, static_cast<std::uint32_t>(r), n));
        const auto d = hops(g, b.rank());
        std::vector<float> out(n);
        for (int t = 1; t <= diam + 2; ++t) {
          relay.run(v[static_cast<std::size_t>(b.rank())].data(), fill.data(), out.data(),
                    static_cast<std::uint64_t>(t));
          std::vector<float> want(n, 0.0f);
          int heard = 0;
          for (std::size_t i = 0; i < n; ++i) {
            double s = 0;
            int c = 0;
            for (int r = 0; r < K; ++r)
              if (d[static_cast<std::size_t>(r)] <= t) {
                s += v[static_cast<std::size_t>(r)][i];
                ++c;
              }
            s += (K - c) * static_cast<double>(fill[i]);
            want[i] = static_cast<float>(s / K);
            heard = c - 1;
          }
          double e = max_diff(out, want);
          if (relay.last_heard() != static_cast<std::uint64_t>(heard)) e = 1e9;
          err[static_cast<std::size_t>(b.rank())] = std::max(err[static_cast<std::size_t>(b.rank())], e);
        }
      });
      for (double e : err) EXPECT_LT(e, 1e-5) << tree << " on " << K << " ranks";
    }
  }
}

TEST(RelaySgd, UpdateVariantAddsTheMeanUpdateOnceTheTreeIsCrossed) {
  const std::size_t n = 64;
  for (const std::string tree : {"chain", "binary-tree", "double-binary-tree"}) {
    for (int K : {1, 4, 7}) {
      const auto g = topo::make_topology(tree, K);
      std::vector<double> err(static_cast<std::size_t>(K), 0.0);
      LoopbackWorld::spawn(K, [&](Backend& b) {
        optim::OptimConfig c;
        c.method = "relaysgd";
        c.relay_variant = "update";
        c.topology = tree;
        c.momentum = 0.0;
        auto opt = optim::make_optimizer(b, optim::Layout::flat(n), c);
        std::vector<std::vector<float>> gs;
        for (int r = 0; r < K; ++r) gs.push_back(random_vector(kSeed, static_cast<std::uint32_t>(r), n));
        std::vector<float> x(n, 0.5f);
        const float lr = 0.1f;
        // Double trees: the halves travel on different trees, so the mean arrives after the larger
        // diameter; check the steady state only there.
        const int diam = tree == "double-binary-tree"
                             ? std::max(topo::diameter(topo::double_binary_trees(K)[0]),
                                        topo::diameter(topo::double_binary_trees(K)[1]))
                             : topo::diameter(g);
        const auto d = hops(g, b.rank());
        for (int t = 1; t <= diam + 2; ++t) {
          const auto before = x;
          opt->step(x, gs[static_cast<std::size_t>(b.rank())], static_cast<std::uint64_t>(t - 1), lr);
          for (std::size_t i = 0; i < n; ++i) {
            double s = 0;
            for (int r = 0; r < K; ++r)
              if (t >= diam || (tree != "double-binary-tree" && d[static_cast<std::size_t>(r)] <= t))
                s += -lr * static_cast<double>(gs[static_cast<std::size_t>(r)][i]);
            if (t < diam && tree == "double-binary-tree") continue;
            const double e = std::abs((x[i] - before[i]) - s / K);
            err[static_cast<std::size_t>(b.rank())] = std::max(err[static_cast<std::size_t>(b.rank())], e);
          }
        }
      });
      for (double e : err) EXPECT_LT(e, 1e-5) << tree << " on " << K << " ranks";
    }
  }
}

TEST(RelaySgd, RefusesAGraphWithCycles) {
  LoopbackWorld::spawn(4, [](Backend& b) {
    optim::OptimConfig c;
    c.method = "relaysgd";
    c.topology = "ring";
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(8), c), sparcol::Error);
  });
}

optim::Layout matrix_layout() {
  optim::Layout l;
  l.tensors.push_back({"w", 0, 36, 2, 6});   // 6 x 6
  l.tensors.push_back({"b", 36, 5, 1, 0});   // a vector: plain gossip
  l.tensors.push_back({"v", 41, 24, 2, 4});  // 4 x 6
  return l;
}

TEST(PowerGossip, PreservesTheMeanAndContracts) {
  const auto layout = matrix_layout();
  const std::size_t n = layout.total();
  for (int K : {2, 5, 8}) {
    for (int iters : {1, 2}) {
      std::vector<double> err(static_cast<std::size_t>(K), 0.0);
      std::vector<double> spread(2, 0.0);
      LoopbackWorld::spawn(K, [&](Backend& b) {
        optim::OptimConfig c;
        c.method = "powergossip";
        c.low_rank = 1;
        c.power_iters = iters;
        c.diffusion_rate = 1.0;
        auto opt = optim::make_optimizer(b, layout, c);
        auto x = random_vector(kSeed, static_cast<std::uint32_t>(b.rank()), n);
        std::vector<float> mean0 = x;
        b.allreduce_sum(mean0.data(), n);
        const std::vector<float> zero(n, 0.0f);
        auto dist = [&]() {
          std::vector<float> mean = x;
          b.allreduce_sum(mean.data(), n);
          double d = 0;
          for (std::size_t i = 0; i < n; ++i) d += std::pow(x[i] - mean[i] / K, 2);
          std::vector<float> dd{static_cast<float>(d)};
          b.allreduce_sum(dd.data(), 1);
          return std::pair{mean, static_cast<double>(dd[0])};
        };
        const double d0 = dist().second;
        for (std::uint64_t t = 0; t < 30; ++t) opt->step(x, zero, t, 0.1);
        const auto [mean, d1] = dist();
        err[static_cast<std::size_t>(b.rank())] = max_diff(mean, mean0);
        if (b.rank() == 0) spread = {d0, d1};
      });
      for (double e : err) EXPECT_LT(e, 1e-4) << K << " ranks";
      EXPECT_LT(spread[1], 0.5 * spread[0]) << K << " ranks, " << iters << " iterations";
    }
  }
}

TEST(PowerGossip, FullRankIsDpsgd) {
  optim::Layout layout;
  layout.tensors.push_back({"w", 0, 36, 2, 6});
  layout.tensors.push_back({"b", 36, 5, 1, 0});
  const std::size_t n = layout.total();
  for (int K : {2, 4, 7}) {
    std::vector<double> err(static_cast<std::size_t>(K), 0.0);
    LoopbackWorld::spawn(K, [&](Backend& b) {
      optim::OptimConfig pg, dp;
      pg.method = "powergossip";
      pg.low_rank = 6;
      dp.method = "dpsgd";
      auto a = optim::make_optimizer(b, layout, pg);
      auto d = optim::make_optimizer(b, layout, dp);
      auto xa = random_vector(kSeed, static_cast<std::uint32_t>(b.rank()), n);
      auto xd = xa;
      const std::vector<float> zero(n, 0.0f);
      a->step(xa, zero, 0, 0.1);  // it = 0: the first gossip is skipped (the models are still equal)
      double e = max_diff(xa, xd);
      for (std::uint64_t t = 1; t < 4; ++t) {
        a->step(xa, zero, t, 0.1);
        d->step(xd, zero, t, 0.1);
        e = std::max(e, max_diff(xa, xd));
      }
      err[static_cast<std::size_t>(b.rank())] = e;
    });
    for (double e : err) EXPECT_LT(e, 1e-5) << K << " ranks";
  }
}

TEST(Decentralized, BadParametersAreNamed) {
  LoopbackWorld::spawn(3, [](Backend& b) {
    optim::OptimConfig c;
    c.method = "powergossip";
    c.low_rank = 0;
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(8), c), sparcol::Error);
    c.low_rank = 1;
    c.topology = "torus";  // 3 ranks do not make a torus
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(8), c), sparcol::Error);
    optim::OptimConfig g;
    g.method = "gmc";
    g.topology = "ring";
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(8), g), sparcol::Error);
  });
}

}  // namespace

// The topo layer: graphs, mixing weights, spectral gaps, spanning trees, the A2CiD2 constants and
// mixing, and the neighbour exchange on LoopbackBackend (every topology, 1-8 ranks).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <utility>

#include "../common/coll_checks.hpp"
#include "neighbor_checks.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/topo/acid.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/topo/neighbor_exchange.hpp"

namespace topo = sparcol::topo;
using sparcol::Error;
using sparcol::ErrorCode;
using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;

namespace {

TEST(Topology, EveryGraphIsSymmetricDoublyStochasticAndConnected) {
  for (int n = 1; n <= 17; ++n) {
    for (const auto& name : sparcol::test::fitting_topologies(n)) {
      const auto g = topo::make_topology(name, n);
      ASSERT_EQ(g.n, n);
      EXPECT_TRUE(topo::connected(g)) << name << " " << n;
      const auto w = topo::mixing_matrix(g);
      for (int i = 0; i < n; ++i) {
        double row = 0, col = 0;
        for (int j = 0; j < n; ++j) {
          row += w[static_cast<std::size_t>(i * n + j)];
          col += w[static_cast<std::size_t>(j * n + i)];
          EXPECT_EQ(w[static_cast<std::size_t>(i * n + j)], w[static_cast<std::size_t>(j * n + i)]) << name;
        }
        EXPECT_NEAR(row, 1.0, 1e-12) << name << " " << n;
        EXPECT_NEAR(col, 1.0, 1e-12) << name << " " << n;
        EXPECT_GT(g.self_weight[static_cast<std::size_t>(i)], 0.0) << name << " " << n;
        EXPECT_EQ(g.index_of(i, i), -1);
      }
      const double gap = topo::spectral_gap(g);
      EXPECT_GT(gap, 0.0) << name << " " << n;
      EXPECT_LE(gap, 1.0 + 1e-12) << name << " " << n;
    }
  }
}

TEST(Topology, NeighbourListsAndWeightsOfTheNamedGraphs) {
  const auto ring = topo::make_topology("ring", 8);
  EXPECT_EQ(ring.neighbors[0], (std::vector<int>{1, 7}));
  EXPECT_DOUBLE_EQ(ring.weight[0][0], 1.0 / 3);  // the authors' ring: 1/3 for self and each neighbour
  EXPECT_NEAR(ring.self_weight[0], 1.0 / 3, 1e-15);
  EXPECT_EQ(topo::make_topology("ring", 2).neighbors[0], (std::vector<int>{1}));
  EXPECT_TRUE(topo::make_topology("ring", 1).neighbors[0].empty());
  EXPECT_EQ(topo::make_topology("exponential", 8).neighbors[0], (std::vector<int>{1, 2, 4, 6, 7}));
  const auto torus = topo::make_topology("torus", 12);  // 3 x 4
  EXPECT_EQ(torus.neighbors[0], (std::vector<int>{1, 3, 4, 8}));
  EXPECT_EQ(topo::make_topology("torus", 4).neighbors[0], (std::vector<int>{1, 2}));  // 2 x 2: a 4-cycle
  const auto chain = topo::make_topology("chain", 5);
  EXPECT_TRUE(topo::is_tree(chain));
  EXPECT_EQ(topo::diameter(chain), 4);
  EXPECT_DOUBLE_EQ(chain.weight[0][0], 1.0 / 3);  // Metropolis: 1/(max(1, 2) + 1)
  EXPECT_DOUBLE_EQ(chain.self_weight[0], 2.0 / 3);
  const auto tree = topo::make_topology("binary-tree", 8);
  EXPECT_TRUE(topo::is_tree(tree));
  EXPECT_EQ(tree.neighbors[1], (std::vector<int>{0, 2, 3}));
  EXPECT_EQ(tree.neighbors[3], (std::vector<int>{1, 6, 7}));
  const auto trees = topo::double_binary_trees(8);
  ASSERT_EQ(trees.size(), 2u);
  EXPECT_TRUE(topo::is_tree(trees[1]));
  EXPECT_EQ(trees[1].neighbors[6], (std::vector<int>{4, 5, 7}));  // node 1 of the reversed labels
  const auto dbt = topo::make_topology("double-binary-tree", 8);
  for (const auto& t : trees)
    for (int i = 0; i < 8; ++i)
      for (int j : t.neighbors[static_cast<std::size_t>(i)])
        EXPECT_GE(dbt.index_of(i, j), 0) << i << "-" << j;
  EXPECT_LE(dbt.edges(), trees[0].edges() + trees[1].edges());
  EXPECT_EQ(topo::make_topology("complete", 5).degree(3), 4);
}

TEST(Topology, SpectralGapOfTheRingHasItsClosedForm) {
  // W = 1/3 (I + S + S^T): eigenvalues 1/3 + 2/3 cos(2 pi k / n).
  for (int n : {3, 4, 5, 8, 16}) {
    double second = 0;
    for (int k = 1; k < n; ++k)
      second = std::max(second, std::abs(1.0 / 3 + 2.0 / 3 * std::cos(2 * std::numbers::pi * k / n)));
    EXPECT_NEAR(topo::spectral_gap(topo::make_topology("ring", n)), 1 - second, 1e-10) << n;
  }
  EXPECT_NEAR(topo::spectral_gap(topo::make_topology("complete", 6)), 1.0, 1e-10);
}

TEST(Topology, AGraphThatDoesNotFitTheRankCountIsAClearError) {
  for (int n : {1, 2, 3, 5, 7, 13}) {
    try {
      topo::make_topology("torus", n, 0);
      ADD_FAILURE() << "torus of " << n;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("torus does not fit " + std::to_string(n) + " ranks"),
                std::string::npos)
          << e.what();
    }
  }
  try {
    topo::make_topology("hypercube", 4);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown topology 'hypercube' (valid: ring, torus"),
              std::string::npos);
  }
  // A graph of another size than the world.
  LoopbackWorld::spawn(
      3, [](Backend& b) { EXPECT_THROW(topo::NeighborExchange(b, topo::make_topology("ring", 4)), Error); });
}

TEST(Acid, ConstantsOfTheSixteenNodeCycleAreTheCheckValues) {
  const auto c = topo::acid_constants(topo::make_topology("ring", 16), 1.0);
  EXPECT_NEAR(c.chi1, 1 / (1 - std::cos(2 * std::numbers::pi / 16)), 1e-9);
  EXPECT_NEAR(c.chi1, 13.137, 5e-4);
  EXPECT_NEAR(c.chi2, 0.9375, 1e-10);
  EXPECT_NEAR(c.eta, 0.1425, 5e-5);
  EXPECT_NEAR(c.alpha, 1.872, 5e-4);
  // The rate scales both chi by 1/rate: eta scales by rate, alpha is unchanged.
  const auto c2 = topo::acid_constants(topo::make_topology("ring", 16), 2.0);
  EXPECT_NEAR(c2.chi1, c.chi1 / 2, 1e-9);
  EXPECT_NEAR(c2.eta, 2 * c.eta, 1e-9);
  EXPECT_NEAR(c2.alpha, c.alpha, 1e-9);
  EXPECT_THROW(topo::acid_constants(topo::make_topology("complete", 6), 1.0), Error);
  EXPECT_THROW(topo::acid_constants(topo::make_topology("chain", 6), 1.0), Error);
  EXPECT_THROW(topo::acid_constants(topo::make_topology("ring", 8), 0.0), Error);
}

TEST(Acid, ClosedFormMixingEqualsTheMatrixExponential) {
  // expm(M dt) for M = eta [[-1, 1], [1, -1]] by its Taylor series (converges fast for |M dt| < 3).
  for (double eta : {0.0, 0.1425, 0.7, 2.5}) {
    for (double dt : {0.0, 0.01, 0.5, 1.0, 1.3}) {
      double e[2][2] = {{1, 0}, {0, 1}}, term[2][2] = {{1, 0}, {0, 1}};
      const double m[2][2] = {{-eta * dt, eta * dt}, {eta * dt, -eta * dt}};
      for (int k = 1; k < 60; ++k) {
        double t[2][2];
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) t[i][j] = (term[i][0] * m[0][j] + term[i][1] * m[1][j]) / k;
        for (int i = 0; i < 2; ++i)
          for (int j = 0; j < 2; ++j) {
            term[i][j] = t[i][j];
            e[i][j] += t[i][j];
          }
      }
      float x[3] = {1.0f, -2.5f, 0.0f}, xt[3] = {-3.0f, 4.0f, 7.0f};
      const float x0[3] = {1.0f, -2.5f, 0.0f}, xt0[3] = {-3.0f, 4.0f, 7.0f};
      topo::acid_mix(x, xt, 3, eta, dt);
      for (int i = 0; i < 3; ++i) {
        EXPECT_NEAR(x[i], e[0][0] * x0[i] + e[0][1] * xt0[i], 1e-5) << eta << " " << dt;
        EXPECT_NEAR(xt[i], e[1][0] * x0[i] + e[1][1] * xt0[i], 1e-5) << eta << " " << dt;
        EXPECT_NEAR(x[i] + xt[i], x0[i] + xt0[i], 1e-5);  // the sum is preserved
      }
    }
  }
}

// One pairwise averaging of ranks i and j, each dt_i, dt_j after its last event, in both orders of
// 10.6, worked by hand in double: mix-first uses both mixed values, exchange-first the neighbour's
// value from before its mixing with the rank's own mixed value.
TEST(Acid, PairwiseAveragingInBothOrders) {
  const double eta = 0.7, alpha = 1.9, dti = 0.4, dtj = 1.1;
  const float xi0 = 1.0f, xti0 = -3.0f, xj0 = -2.5f, xtj0 = 4.0f;
  auto mixed = [&](double x, double xt, double dt) {
    const double s = (x + xt) / 2, h = (x - xt) / 2, e = std::exp(-2 * eta * dt);
    return std::pair<double, double>{s + h * e, s - h * e};
  };
  const auto [xim, xtim] = mixed(xi0, xti0, dti);
  const auto [xjm, xtjm] = mixed(xj0, xtj0, dtj);
  for (const bool exchange_first : {false, true}) {
    float xi = xi0, xti = xti0, xj = xj0, xtj = xtj0;
    float sent_i = xi, sent_j = xj;
    if (!exchange_first) {  // mix, then send
      topo::acid_mix(&xi, &xti, 1, eta, dti);
      topo::acid_mix(&xj, &xtj, 1, eta, dtj);
      sent_i = xi;
      sent_j = xj;
      topo::acid_average(&xi, &xti, 1, &sent_i, &sent_j, alpha);
      topo::acid_average(&xj, &xtj, 1, &sent_j, &sent_i, alpha);
    } else {  // send the values of the last event, then mix, then average with the own mixed x
      topo::acid_mix(&xi, &xti, 1, eta, dti);
      topo::acid_mix(&xj, &xtj, 1, eta, dtj);
      topo::acid_average(&xi, &xti, 1, &xi, &sent_j, alpha);
      topo::acid_average(&xj, &xtj, 1, &xj, &sent_i, alpha);
    }
    const double ui = exchange_first ? xj0 : xjm;  // the neighbour's x that i averages with
    const double uj = exchange_first ? xi0 : xim;
    EXPECT_NEAR(xi, (xim + ui) / 2, 1e-6) << exchange_first;
    EXPECT_NEAR(xti, xtim + alpha * (ui - xim), 1e-5) << exchange_first;
    EXPECT_NEAR(xj, (xjm + uj) / 2, 1e-6) << exchange_first;
    EXPECT_NEAR(xtj, xtjm + alpha * (uj - xjm), 1e-5) << exchange_first;
    if (!exchange_first) {  // the default order keeps the pair's sum of x and of x + xt
      EXPECT_NEAR(xi + xj, xim + xjm, 1e-6);
      EXPECT_NEAR(xi + xti + xj + xtj, xi0 + xti0 + xj0 + xtj0, 1e-5);
    }
  }
  // With no time since the last events both orders are the same averaging, bitwise; xt null
  // (async-gossip) leaves only the plain average.
  float a[2] = {1.5f, -0.25f}, at[2] = {2.0f, 3.0f}, b[2] = {-4.0f, 8.5f};
  float a2[2] = {1.5f, -0.25f}, at2[2] = {2.0f, 3.0f};
  const float sent[2] = {1.5f, -0.25f};
  topo::acid_average(a, at, 2, sent, b, alpha);
  topo::acid_average(a2, at2, 2, a2, b, alpha);
  for (int k = 0; k < 2; ++k) {
    EXPECT_EQ(a[k], a2[k]);
    EXPECT_EQ(at[k], at2[k]);
  }
  float p[1] = {3.0f}, q[1] = {-1.0f};
  topo::acid_average(p, nullptr, 1, p, q, alpha);
  EXPECT_EQ(p[0], 1.0f);
}

TEST(NeighborExchangeLoopback, EveryTopologyOneToEightRanksZeroWrong) {
  const std::uint64_t seed = sparcol::test::test_seed();
  for (int ranks = 1; ranks <= 8; ++ranks) {
    for (const auto& name : sparcol::test::fitting_topologies(ranks)) {
      for (std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{1009}}) {
        std::vector<sparcol::test::NeighborCheck> res(static_cast<std::size_t>(ranks));
        const auto g = topo::make_topology(name, ranks);
        LoopbackWorld::spawn(ranks, [&](Backend& b) {
          res[static_cast<std::size_t>(b.rank())] = sparcol::test::check_neighbor_exchange(b, g, count, seed);
        });
        for (const auto& r : res)
          EXPECT_EQ(r.wrong, 0u) << name << " on " << ranks << " ranks, count " << count << ": " << r.first
                                 << " (seed " << seed << ")";
      }
    }
  }
}

TEST(NeighborExchangeLoopback, ANeighbourInAnotherCallIsAMismatchNamingIt) {
  // Rank 1 sends 8 floats, the others 4: the fingerprints differ and the neighbours of 1 say so.
  std::vector<std::string> msgs(4);
  EXPECT_THROW(LoopbackWorld::spawn(4,
                                    [&](Backend& b) {
                                      b.set_timeout(std::chrono::milliseconds(5000));
                                      topo::NeighborExchange nx(b, topo::make_topology("ring", 4));
                                      const std::size_t n = b.rank() == 1 ? 8 : 4;
                                      std::vector<float> s(n), r(2 * n);
                                      try {
                                        nx.run_same(s.data(), r.data(), n * sizeof(float));
                                      } catch (const Error& e) {
                                        msgs[static_cast<std::size_t>(b.rank())] = e.what();
                                        throw;
                                      }
                                    }),
               Error);
  bool named = false;
  for (const auto& m : msgs)
    named = named || (m.find("neighbor_exchange(count=") != std::string::npos &&
                      m.find("neighbour rank") != std::string::npos);
  EXPECT_TRUE(named) << msgs[0] << " | " << msgs[1] << " | " << msgs[2] << " | " << msgs[3];
}

}  // namespace

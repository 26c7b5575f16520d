// The asynchronous pairing protocol (topo::PairGossip) and the methods on it (a2cid2, async-gossip)
// on LoopbackBackend: clean ends in randomized runs, pairs only between neighbours and agreed by both,
// mean-preserving events, convergence to the mean, a silent neighbour as a named timeout.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <random>
#include <thread>

#include "../common/coll_checks.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/optim/optimizer.hpp"
#include "sparcol/topo/acid.hpp"
#include "sparcol/topo/graph.hpp"
#include "sparcol/topo/pair_gossip.hpp"

namespace optim = sparcol::optim;
namespace topo = sparcol::topo;
using sparcol::Error;
using sparcol::ErrorCode;
using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

// One rank's side of the A2CiD2 events (eta = alpha = 0: async-gossip) on a vector of n floats, with
// a fixed time unit: what the optimizer does, without gradients.
struct Node {
  std::mutex mu;
  std::vector<float> x, xt;
  double eta = 0, alpha = 0;
  std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
  std::vector<int> peers_seen;
  std::vector<float> d;

  void mix() {
    const auto now = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double, std::milli>(now - last).count();  // unit: 1 ms
    topo::acid_mix(x.data(), xt.data(), x.size(), eta, dt);
    last = now;
  }
  topo::PairGossip::Hooks hooks() {
    topo::PairGossip::Hooks h;
    h.prepare = [this](int peer, std::span<float> send) {
      std::lock_guard lock(mu);
      mix();
      peers_seen.push_back(peer);
      std::copy(x.begin(), x.end(), send.begin());
    };
    h.apply = [this](int, std::span<const float> send, std::span<const float> recv) {
      std::lock_guard lock(mu);
      d.resize(x.size());
      for (std::size_t i = 0; i < x.size(); ++i) d[i] = recv[i] - send[i];
      for (std::size_t i = 0; i < x.size(); ++i) x[i] += 0.5f * d[i];
      for (std::size_t i = 0; i < x.size(); ++i) xt[i] += static_cast<float>(alpha) * d[i];
    };
    return h;
  }
};

std::vector<float> start_vector(std::uint64_t seed, int rank, std::size_t n) {
  std::mt19937_64 rng(seed * 131 + static_cast<std::uint64_t>(rank));
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& e : v) e = nd(rng);
  return v;
}

struct RunResult {
  std::vector<topo::PairGossipStats> stats;
  std::vector<std::vector<float>> x, xt;
  std::vector<std::vector<int>> peers;
};

// K ranks on `graph`, each doing steps[r] gradient steps with a random sleep before each, then finish().
// min_averagings > 0: a rank goes on stepping (up to 20000 steps) until it has averaged that often,
// so that a loaded machine still produces events; steps[r] then becomes the steps it took.
RunResult run_protocol(const topo::Graph& graph, std::vector<int>& steps, double rate, std::size_t n,
                       double eta, double alpha, std::uint64_t seed, int max_sleep_us,
                       std::uint64_t min_averagings = 0, bool poisson = false) {
  const int K = graph.n;
  RunResult res;
  res.stats.resize(static_cast<std::size_t>(K));
  res.x.resize(static_cast<std::size_t>(K));
  res.xt.resize(static_cast<std::size_t>(K));
  res.peers.resize(static_cast<std::size_t>(K));
  LoopbackWorld::spawn(K, [&](Backend& b) {
    b.set_timeout(std::chrono::seconds(30));
    const auto r = static_cast<std::size_t>(b.rank());
    Node node;
    node.x = start_vector(seed, b.rank(), n);
    node.xt = start_vector(seed + 7, b.rank(), n);
    node.eta = eta;
    node.alpha = alpha;
    std::mt19937_64 rng(seed ^ (r * 977 + 5));
    {
      topo::PairGossip pg(b, graph, n, rate, node.hooks(), seed, poisson);
      for (int s = 0; s < steps[r] || (pg.stats().averagings < min_averagings && s < 20000); ++s) {
        const int us =
            max_sleep_us > 0 ? static_cast<int>(rng() % static_cast<std::uint64_t>(max_sleep_us)) : 0;
        std::this_thread::sleep_for(std::chrono::microseconds(us));
        pg.add_step();
      }
      steps[r] = static_cast<int>(pg.stats().steps);
      res.stats[r] = pg.finish();
    }
    std::lock_guard lock(node.mu);
    res.x[r] = node.x;
    res.xt[r] = node.xt;
    res.peers[r] = node.peers_seen;
  });
  return res;
}

// Pairs are agreed by both sides: i averaged with j as often as j with i, only with neighbours, and
// never more often than its budget allowed; every control message sent was received (the data
// messages are one each way per averaging, so the averaging counts cover them).
void check_pairs(const topo::Graph& g, const RunResult& res, const std::vector<int>& steps, double rate,
                 const std::string& what, bool poisson = false) {
  for (int i = 0; i < g.n; ++i) {
    const auto& si = res.stats[static_cast<std::size_t>(i)];
    const auto& nb = g.neighbors[static_cast<std::size_t>(i)];
    ASSERT_EQ(si.per_neighbor.size(), nb.size()) << what;
    std::uint64_t total = 0;
    for (std::size_t k = 0; k < nb.size(); ++k) {
      const int j = nb[k];
      const int back = g.index_of(j, i);
      ASSERT_GE(back, 0) << what;
      const auto& sj = res.stats[static_cast<std::size_t>(j)];
      const auto b = static_cast<std::size_t>(back);
      EXPECT_EQ(si.per_neighbor[k], sj.per_neighbor[b]) << what << ": averagings of " << i << " with " << j;
      // Every control message i sent to j was received by j, and nothing else: none left unmatched.
      EXPECT_EQ(si.sent_to[k], sj.received_from[b]) << what << ": messages from " << i << " to " << j;
      EXPECT_GE(si.sent_to[k], 1u) << what << ": " << i << " never said DONE to " << j;
      total += si.per_neighbor[k];
    }
    EXPECT_EQ(total, si.averagings) << what;
    EXPECT_EQ(si.steps, static_cast<std::uint64_t>(steps[static_cast<std::size_t>(i)])) << what;
    EXPECT_LE(static_cast<double>(si.averagings), si.granted + 1e-9) << what << " rank " << i;
    if (!poisson) {
      EXPECT_NEAR(si.granted, rate * static_cast<double>(si.steps), 1e-9) << what;
    }
    for (int p : res.peers[static_cast<std::size_t>(i)])
      EXPECT_GE(g.index_of(i, p), 0) << what << ": rank " << i << " paired with " << p << ", not a neighbour";
  }
}

TEST(PairGossip, EndsCleanlyIn200RandomizedRuns) {
  std::mt19937_64 rng(kSeed);
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t averagings = 0;
  for (int run = 0; run < 200; ++run) {
    const int K = 2 + static_cast<int>(rng() % 7);
    const std::string topology = rng() % 2 == 0 ? "ring" : "exponential";
    const topo::Graph g = topo::make_topology(topology, K);
    std::vector<int> steps(static_cast<std::size_t>(K));
    for (auto& s : steps) s = static_cast<int>(rng() % 25);
    const double rates[] = {0.5, 1.0, 2.0, 3.0};
    const double rate = rates[rng() % 4];
    const int sleep_us = static_cast<int>(rng() % 400);
    const bool poisson = rng() % 4 == 0;  // a quarter of the runs with Poisson scheduling
    const std::string what = "run " + std::to_string(run) + ": " + topology + " on " + std::to_string(K) +
                             " ranks, rate " + std::to_string(rate) + (poisson ? " (Poisson)" : "");
    const RunResult res = run_protocol(g, steps, rate, 3, 0.0, 0.0, kSeed + static_cast<std::uint64_t>(run),
                                       sleep_us, 0, poisson);
    check_pairs(g, res, steps, rate, what, poisson);
    for (const auto& s : res.stats) averagings += s.averagings;
    if (HasFailure()) break;
  }
  EXPECT_GT(averagings, 0u);
  std::printf("200 runs, %llu averagings (counted on both sides), %.1f s\n",
              static_cast<unsigned long long>(averagings),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

// Each event keeps the sum over ranks of x (async-gossip) and of x + xt (A2CiD2: the mixing keeps
// x + xt on a rank, the averaging moves x and xt by opposite amounts on the two ends), to rounding.
TEST(PairGossip, EventsPreserveTheSum) {
  const std::size_t n = 64;
  for (const std::string topology : {"ring", "exponential"}) {
    for (int K : {3, 5, 8}) {
      const topo::Graph g = topo::make_topology(topology, K);
      for (bool acid : {false, true}) {
        std::vector<int> steps(static_cast<std::size_t>(K), 40);
        const auto c = topo::acid_constants(topo::make_topology("ring", 16), 1.0);
        const double eta = acid ? c.eta : 0.0, alpha = acid ? c.alpha : 0.0;
        const RunResult res = run_protocol(g, steps, 1.0, n, eta, alpha, kSeed, 100, 5);
        check_pairs(g, res, steps, 1.0, topology);
        std::uint64_t events = 0;
        for (const auto& s : res.stats) events += s.averagings;
        EXPECT_GT(events, 0u);
        for (std::size_t i = 0; i < n; ++i) {
          double before = 0, after = 0;
          for (int r = 0; r < K; ++r) {
            const auto x0 = start_vector(kSeed, r, n), xt0 = start_vector(kSeed + 7, r, n);
            before += x0[i] + (acid ? xt0[i] : 0.0);
            after +=
                res.x[static_cast<std::size_t>(r)][i] + (acid ? res.xt[static_cast<std::size_t>(r)][i] : 0.0);
          }
          EXPECT_NEAR(after, before, 1e-4 * (1 + static_cast<double>(events)))
              << topology << " K=" << K << (acid ? " a2cid2" : " async-gossip") << " element " << i;
        }
      }
    }
  }
}

// Without gradients, async-gossip at a high rate drives every rank to the mean of the start vectors.
TEST(PairGossip, AsyncGossipConvergesToTheMean) {
  const std::size_t n = 16;
  for (const std::string topology : {"ring", "exponential"}) {
    const int K = 6;
    const topo::Graph g = topo::make_topology(topology, K);
    std::vector<int> steps(static_cast<std::size_t>(K), 100);
    const RunResult res = run_protocol(g, steps, 8.0, n, 0.0, 0.0, kSeed, 2000, 150);
    double spread0 = 0, spread = 0;
    for (std::size_t i = 0; i < n; ++i) {
      double mean = 0;
      for (int r = 0; r < K; ++r) mean += start_vector(kSeed, r, n)[i] / K;
      for (int r = 0; r < K; ++r) {
        spread0 = std::max(spread0, std::abs(start_vector(kSeed, r, n)[i] - mean));
        spread = std::max(spread, std::abs(res.x[static_cast<std::size_t>(r)][i] - mean));
      }
    }
    std::uint64_t ev = 0;
    for (const auto& s : res.stats) ev += s.averagings;
    EXPECT_GT(ev,
              static_cast<std::uint64_t>(K) * 100);  // every rank averaged >= 150 times (or stepped 20000)
    EXPECT_LT(spread, 1e-3 * spread0) << topology << ": largest distance to the mean " << spread;
  }
}

// A neighbour that never runs the protocol: every live rank ends with Error(kTimeout) (no hang), and
// the first to fail names the silent rank.
TEST(PairGossip, SilentNeighbourIsANamedTimeout) {
  const int K = 4, silent = 2;
  const topo::Graph g = topo::make_topology("ring", K);
  std::mutex mu;
  std::vector<std::pair<std::chrono::steady_clock::time_point, std::string>> errors;
  std::vector<ErrorCode> codes(K, ErrorCode::kInternal);
  std::atomic<int> ended{0};
  const auto t0 = std::chrono::steady_clock::now();
  LoopbackWorld::spawn(K, [&](Backend& b) {
    b.set_timeout(std::chrono::milliseconds(800));
    if (b.rank() == silent) {
      auto dup = b.duplicate();  // takes part in the duplicate, then says nothing
      while (ended.load() < K - 1 && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(20))
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      return;
    }
    Node node;
    node.x.assign(4, static_cast<float>(b.rank()));
    node.xt = node.x;
    try {
      topo::PairGossip pg(b, g, 4, 1.0, node.hooks(), kSeed);
      for (int s = 0; s < 20; ++s) {
        pg.add_step();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      pg.finish();
    } catch (const Error& e) {
      std::lock_guard lock(mu);
      codes[static_cast<std::size_t>(b.rank())] = e.code();
      errors.emplace_back(std::chrono::steady_clock::now(), e.what());
    }
    ++ended;
  });
  ASSERT_EQ(errors.size(), static_cast<std::size_t>(K - 1));
  for (int r = 0; r < K; ++r)
    if (r != silent) {
      EXPECT_EQ(codes[static_cast<std::size_t>(r)], ErrorCode::kTimeout) << "rank " << r;
    }
  std::sort(errors.begin(), errors.end());
  EXPECT_NE(errors.front().second.find("rank " + std::to_string(silent)), std::string::npos)
      << errors.front().second;
  EXPECT_NE(errors.front().second.find("pair gossip"), std::string::npos) << errors.front().second;
}

// The optimizers: a quadratic with a different centre per rank; the protocol ends at total_steps and
// every rank counts its events. async-gossip: the averagings keep the sum of the models, so
// sum_i x_i(T) = sum_i x_i(0) - lr sum_i sum_t m_i,t exactly (to rounding), the momenta m_i,t being
// recomputed here from the gradients the test gave. a2cid2 keeps sum_i (x_i + xt_i) instead (xt is
// internal; PairGossip.EventsPreserveTheSum checks its events): its models stay finite and within the
// centres' range.
TEST(AsyncMethods, A2cid2AndAsyncGossipTrainAQuadratic) {
  const std::size_t n = 32;
  const int K = 4, T = 200;
  for (const std::string variant : {"async-gossip", "a2cid2", "a2cid2 exchange-first"}) {
    const std::string method = variant.substr(0, variant.find(' '));
    const bool exchange_first = variant != method;
    std::vector<std::vector<float>> xs(K);
    std::vector<double> moved(K, 0.0);  // lr * sum_t m_t[0] per rank
    std::vector<std::vector<std::pair<std::string, double>>> counts(K);
    std::string text;
    LoopbackWorld::spawn(K, [&](Backend& b) {
      b.set_timeout(std::chrono::seconds(30));
      optim::OptimConfig c;
      c.method = method;
      c.momentum = 0.5;
      c.comm_rate = 2.0;
      c.total_steps = T;
      if (exchange_first) c.acid_order = "exchange-first";
      auto opt = optim::make_optimizer(b, optim::Layout::flat(n), c);
      EXPECT_TRUE(opt->per_worker_models());
      std::vector<float> x(n, 0.0f), g(n);
      const float centre = static_cast<float>(b.rank());
      float m0 = 0;  // the optimizer's momentum of element 0, recomputed (float, as it computes it)
      double sum_m = 0;
      for (int t = 0; t < T; ++t) {
        const auto z = opt->gradient_point(x, 0.05);
        for (std::size_t i = 0; i < n; ++i) g[i] = z[i] - centre;
        opt->step(x, g, static_cast<std::uint64_t>(t), 0.05);
        m0 = 0.5f * m0 + g[0];
        sum_m += static_cast<double>(0.05f * m0);
        std::this_thread::sleep_for(std::chrono::microseconds(300));  // a gradient takes time
      }
      const auto r = static_cast<std::size_t>(b.rank());
      xs[r] = x;
      moved[r] = sum_m;
      counts[r] = opt->event_counts();
      if (b.rank() == 0) text = opt->startup_text();
    });
    EXPECT_NE(text.find("eta"), std::string::npos) << text;
    if (method == "a2cid2") {
      EXPECT_NE(text.find(exchange_first ? "order exchange-first" : "order mix-first"), std::string::npos)
          << text;
    }
    double sum0 = 0, moved_all = 0;
    std::string spread;
    for (int r = 0; r < K; ++r) {
      const auto& xr = xs[static_cast<std::size_t>(r)];
      sum0 += xr[0];
      moved_all += moved[static_cast<std::size_t>(r)];
      spread += " " + std::to_string(xr[0]);
      for (float v : xr) {
        EXPECT_TRUE(std::isfinite(v));
        EXPECT_GE(v, -0.5f) << method;
        EXPECT_LE(v, 3.5f) << method;
      }
    }
    if (method == "async-gossip") {
      EXPECT_NEAR(sum0, -moved_all, 1e-3) << method << ": x[0] per rank" << spread;
    }
    for (int r = 0; r < K; ++r) {
      const auto& cr = counts[static_cast<std::size_t>(r)];
      ASSERT_FALSE(cr.empty());
      EXPECT_EQ(cr[0].first, "gradient_steps");
      EXPECT_EQ(cr[0].second, T);
      EXPECT_GT(cr[1].second, 0) << method << " rank " << r << ": no averaging";
    }
  }
}

TEST(AsyncMethods, RefusesBadRates) {
  LoopbackWorld::spawn(3, [&](Backend& b) {
    optim::OptimConfig c;
    c.method = "a2cid2";
    for (double rate : {0.0, -1.0, std::nan("")}) {
      c.comm_rate = rate;
      EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(4), c), Error);
    }
    c.comm_rate = 1;
    c.topology = "complete";  // A2CiD2 is not defined on the complete graph
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(4), c), Error);
    c.topology = "ring";
    c.acid_order = "mix-later";  // an order that is neither of 10.6's two
    EXPECT_THROW(optim::make_optimizer(b, optim::Layout::flat(4), c), Error);
  });
}

}  // namespace

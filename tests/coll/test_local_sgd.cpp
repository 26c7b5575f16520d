// The local-SGD family on LoopbackBackend (ALGORITHMS.md 10.7-10.8, docs/optimizers.md): H = 1 is
// synchronous SGD, VRL-SGD with D forced to 0 is Local SGD bit for bit, sum_k D_k = 0 after every
// averaging, STL-SGD with one stage is Local SGD bit for bit, STL's stage schedule, the compressed
// averaging, the rounds counted, and the checkpoint boundary.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using sparcol::optim::Layout;
using sparcol::optim::OptimConfig;
using Vec = std::vector<float>;

namespace {

OptimConfig config(const std::string& method, int period, double momentum) {
  OptimConfig c;
  c.method = method;
  c.momentum = momentum;
  c.period = period;
  c.weight_decay = 1e-3;
  c.exchange.compressor.name = "none";
  c.exchange.compressor.density = 1.0;
  c.exchange.seed = 5;
  return c;
}

// The gradient of rank r at step t at point z: a rank-dependent quadratic pull plus noise, so that
// the local models drift apart between averagings (non-identical data).
Vec grad_at(int rank, std::uint64_t t, std::span<const float> z) {
  sparcol::CounterRng rng(77, sparcol::kStreamUser, static_cast<std::uint32_t>(rank * 1000 + t));
  Vec g(z.size());
  for (std::size_t i = 0; i < z.size(); ++i) {
    const float target = static_cast<float>(rank) - 1.0f + 0.1f * static_cast<float>(i % 5);
    g[i] = 0.5f * (z[i] - target) + 0.3f * static_cast<float>(rng.normal());
  }
  return g;
}

struct Run {
  std::vector<Vec> x;                             // per rank
  std::vector<std::map<std::string, Vec>> state;  // per rank, at the end
  std::vector<std::uint64_t> rounds;              // rank 0, per step
  std::vector<bool> boundary;                     // rank 0, per step
};

// `steps` steps on K ranks; after_step(rank, t, opt) may inspect or write the state.
Run run(const OptimConfig& cfg, int K, std::uint64_t d, int steps, double lr = 0.1,
        const std::function<void(int, std::uint64_t, sparcol::optim::Optimizer&, std::span<float>)>&
            after_step = {}) {
  Run res;
  res.x.resize(static_cast<std::size_t>(K));
  res.state.resize(static_cast<std::size_t>(K));
  LoopbackWorld::spawn(K, [&](Backend& b) {
    auto opt = sparcol::optim::make_optimizer(b, Layout::flat(d), cfg);
    Vec x(d, 0.25f);
    for (int t = 0; t < steps; ++t) {
      const auto tt = static_cast<std::uint64_t>(t);
      const auto z = opt->gradient_point(x, lr);
      const Vec g = grad_at(b.rank(), tt, z);
      const auto st = opt->step(x, g, tt, lr);
      if (b.rank() == 0) {
        res.rounds.push_back(st.comm.rounds);
        res.boundary.push_back(opt->at_checkpoint_boundary());
      }
      if (after_step) after_step(b.rank(), tt, *opt, x);
    }
    const auto r = static_cast<std::size_t>(b.rank());
    res.x[r] = x;
    for (auto& s : opt->state()) res.state[r][s.name] = Vec(s.data.begin(), s.data.end());
  });
  return res;
}

bool same_bits(const Vec& a, const Vec& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(LocalSgd, PeriodOneIsSynchronousSgd) {
  // H = 1 with averaged momentum is DMSGD with global momentum (m = mean_k m_k follows
  // beta*m + gbar); without momentum it is DSGD. Equal to rounding (the order of the sums differs).
  for (const double beta : {0.0, 0.9}) {
    const auto a = run(config("local-sgd", 1, beta), 3, 41, 12);
    const auto b = run(config("dmsgd", 1, beta), 3, 41, 12);
    for (int r = 0; r < 3; ++r) {
      for (std::size_t i = 0; i < 41; ++i)
        ASSERT_NEAR(a.x[r][i], b.x[0][i], 1e-5 * (1 + std::abs(b.x[0][i]))) << "beta " << beta << " i " << i;
    }
    for (auto n : a.rounds) EXPECT_EQ(n, 1u);
  }
}

TEST(VrlSgd, WithTheCorrectionForcedToZeroIsLocalSgdBitwise) {
  for (const double beta : {0.0, 0.5}) {
    const auto local = run(config("local-sgd", 4, beta), 3, 37, 17);
    const auto vrl = run(config("vrl-sgd", 4, beta), 3, 37, 17, 0.1,
                         [](int, std::uint64_t, sparcol::optim::Optimizer& o, std::span<float>) {
                           for (auto& s : o.state())
                             if (s.name == "correction") std::fill(s.data.begin(), s.data.end(), 0.0f);
                         });
    for (int r = 0; r < 3; ++r) {
      EXPECT_TRUE(same_bits(local.x[r], vrl.x[r])) << "beta " << beta << " rank " << r;
      EXPECT_TRUE(same_bits(local.state[r].at("momentum"), vrl.state[r].at("momentum"))) << "rank " << r;
    }
    EXPECT_FALSE(same_bits(local.x[0], local.x[1])) << "17 steps, H = 4: the last step is local";
  }
}

TEST(VrlSgd, CorrectionsSumToZeroAndModelsAgreeAfterEveryAveraging) {
  // Each rank records D_k and x_k after every averaging; then sum_k D_k = 0 to rounding (and D is
  // far from 0: the ranks' data differ) and the x_k are bitwise equal.
  const int K = 3;
  const std::uint64_t d = 13;
  const int steps = 24, H = 3;
  std::vector<std::vector<Vec>> per(static_cast<std::size_t>(K)), xs(static_cast<std::size_t>(K));
  run(config("vrl-sgd", H, 0.5), K, d, steps, 0.05,
      [&](int rank, std::uint64_t t, sparcol::optim::Optimizer& o, std::span<float> x) {
        if ((t + 1) % H != 0) return;
        const auto r = static_cast<std::size_t>(rank);  // each rank writes only its own entry
        for (auto& s : o.state())
          if (s.name == "correction") per[r].emplace_back(s.data.begin(), s.data.end());
        xs[r].emplace_back(x.begin(), x.end());
      });
  double largest = 0;
  ASSERT_EQ(per[0].size(), static_cast<std::size_t>(steps / H));
  for (std::size_t a = 0; a < per[0].size(); ++a) {
    for (std::size_t i = 0; i < d; ++i) {
      double sum = 0, mag = 0;
      for (int k = 0; k < K; ++k) {
        sum += per[static_cast<std::size_t>(k)][a][i];
        mag += std::abs(per[static_cast<std::size_t>(k)][a][i]);
      }
      ASSERT_LE(std::abs(sum), 1e-5 * (1 + mag)) << "averaging " << a << " element " << i;
      largest = std::max(largest, mag);
    }
    for (int k = 1; k < K; ++k) EXPECT_TRUE(same_bits(xs[static_cast<std::size_t>(k)][a], xs[0][a])) << k;
  }
  EXPECT_GT(largest, 0.1);
}

TEST(StlSgd, OneStageIsLocalSgdBitwise) {
  auto stl = config("stl-sgd", 4, 0.5);
  stl.stl_stages = 1;
  const auto a = run(stl, 3, 23, 18);
  const auto b = run(config("local-sgd", 4, 0.5), 3, 23, 18);
  for (int r = 0; r < 3; ++r) EXPECT_TRUE(same_bits(a.x[r], b.x[r])) << "rank " << r;
}

TEST(StlSgd, StageScheduleDoublesTheStageAndThePeriodAndHalvesTheRate) {
  auto c = config("stl-sgd", 2, 0.0);
  c.stl_stages = 3;
  c.total_steps = 70;  // T_1 = 10: stages [0, 10), [10, 30), [30, 70)
  std::vector<std::uint64_t> avg_iid, avg_non;
  for (std::uint64_t t = 0; t < 70; ++t) {
    const auto p = sparcol::optim::local_period(c, t);
    const int stage = t < 10 ? 1 : t < 30 ? 2 : 3;
    EXPECT_EQ(p.stage, stage) << t;
    EXPECT_EQ(p.lr_factor, stage == 1 ? 1.0 : stage == 2 ? 0.5 : 0.25) << t;
    EXPECT_EQ(p.period, 2u << (stage - 1)) << t;
    if (p.average) avg_iid.push_back(t + 1);
  }
  // Stage 1 every 2 steps, stage 2 every 4 from step 10, stage 3 every 8 from step 30.
  std::vector<std::uint64_t> want;
  for (std::uint64_t s = 2; s <= 10; s += 2) want.push_back(s);
  for (std::uint64_t s = 14; s <= 30; s += 4) want.push_back(s);
  for (std::uint64_t s = 38; s <= 70; s += 8) want.push_back(s);
  EXPECT_EQ(avg_iid, want);
  // Non-IID: periods 3, round(3 sqrt 2) = 4, 6; stage ends averaged even off the period.
  c.stl_iid = false;
  c.period = 3;
  EXPECT_EQ(sparcol::optim::local_period(c, 15).period, 4u);
  EXPECT_EQ(sparcol::optim::local_period(c, 40).period, 6u);
  // Stage 1 (steps 1..10): averaged after steps 3, 6, 9 and, at the stage's end, 10.
  EXPECT_TRUE(sparcol::optim::local_period(c, 8).average);
  EXPECT_FALSE(sparcol::optim::local_period(c, 7).average);
  EXPECT_TRUE(sparcol::optim::local_period(c, 9).average);
  EXPECT_EQ(sparcol::optim::local_period(c, 9).length, 1u);
  // Stage 2 counts from its start: averaged after step 14 (4 into it).
  EXPECT_TRUE(sparcol::optim::local_period(c, 13).average);
  EXPECT_FALSE(sparcol::optim::local_period(c, 11).average);
}

TEST(LocalSgd, RoundsAndCheckpointBoundary) {
  // Uncompressed with momentum: x and m in one all-reduce (1 round); compressed: 2 (model
  // difference, then momentum); local steps: 0. The boundary is the averaging step.
  const auto plain = run(config("local-sgd", 3, 0.5), 2, 11, 9);
  auto cc = config("local-sgd", 3, 0.5);
  cc.exchange.compressor = {"topk", 0.3};
  const auto comp = run(cc, 2, 11, 9);
  for (std::size_t t = 0; t < 9; ++t) {
    const bool avg = (t + 1) % 3 == 0;
    EXPECT_EQ(plain.rounds[t], avg ? 1u : 0u) << t;
    EXPECT_EQ(comp.rounds[t], avg ? 2u : 0u) << t;
    EXPECT_EQ(plain.boundary[t], avg) << t;
  }
}

TEST(LocalSgd, CompressedAveragingKeepsReplicasEqualAndIsExactAtFullDensity) {
  auto full = config("vrl-sgd", 4, 0.5);
  full.exchange.compressor = {"topk", 1.0};
  const auto a = run(full, 3, 19, 12);
  const auto b = run(config("vrl-sgd", 4, 0.5), 3, 19, 12);
  for (int r = 0; r < 3; ++r) {
    for (std::size_t i = 0; i < 19; ++i) ASSERT_NEAR(a.x[r][i], b.x[r][i], 1e-5 * (1 + std::abs(b.x[r][i])));
    EXPECT_TRUE(same_bits(a.x[r], a.x[0])) << "after the averaging at step 12 every rank holds xbar";
  }
  auto sparse = full;
  sparse.exchange.compressor = {"topk", 0.2};
  const auto s = run(sparse, 3, 19, 12);
  for (int r = 1; r < 3; ++r) EXPECT_TRUE(same_bits(s.x[r], s.x[0])) << "rank " << r;
  // Error feedback: what was not sent stays in the residual.
  double resid = 0;
  for (float v : s.state[0].at("averaging_residual")) resid += std::abs(v);
  EXPECT_GT(resid, 0.0);
}

TEST(CocodSgd, TauOneIsTheAverageMovedByTheOwnStep) {
  // ALGORITHMS.md 10.9 [D]: tau = 1 gives x_k^{r+1} = xbar^r - eta g_k(x_k^r) (g with weight decay),
  // computed here serially for every rank; equal to rounding (the all-reduce sums in ring order).
  const int K = 3;
  const std::uint64_t d = 17;
  const double lr = 0.1;
  const int steps = 9;
  const auto got = run(config("cocod-sgd", 1, 0.0), K, d, steps, lr);
  std::vector<Vec> xs(K, Vec(d, 0.25f));
  for (int t = 0; t < steps; ++t) {
    Vec mean(d, 0.0f);
    for (std::size_t i = 0; i < d; ++i) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += xs[k][i];
      mean[i] = static_cast<float>(s / K);
    }
    for (int k = 0; k < K; ++k) {
      const Vec g = grad_at(k, static_cast<std::uint64_t>(t), xs[k]);
      for (std::size_t i = 0; i < d; ++i)
        xs[k][i] = mean[i] - static_cast<float>(lr) * (g[i] + 1e-3f * xs[k][i]);
    }
  }
  for (int k = 0; k < K; ++k) {
    for (std::size_t i = 0; i < d; ++i)
      EXPECT_NEAR(got.x[k][i], xs[k][i], 1e-5 * (1 + std::abs(xs[k][i]))) << k;
  }
  EXPECT_FALSE(same_bits(got.x[0], got.x[1])) << "each rank keeps its own last step";
}

TEST(CocodSgd, RoundsAtTheEndOfEveryRoundAndBoundariesWithNothingInFlight) {
  const auto r = run(config("cocod-sgd", 4, 0.5), 2, 11, 10);
  for (std::size_t t = 0; t < 10; ++t) {
    const bool end = (t + 1) % 4 == 0;
    EXPECT_EQ(r.rounds[t], end ? 1u : 0u) << t;
    EXPECT_EQ(r.boundary[t], end) << t;  // the next round's all-reduce starts at the next step
  }
}

TEST(CocodSgd, TheAverageOfTheModelsFollowsTheAverageOfTheSteps) {
  // Summed over ranks, x^{r+1} = xbar^r + (y_k - x_k^r) gives mean_k x^{r+1} = mean_k y_k: the
  // average after a round is the average of where the ranks' local steps took them. Checked
  // against local-sgd's averaged model, which at a period's end is mean_k y_k for the same start.
  const auto cocod = run(config("cocod-sgd", 5, 0.0), 3, 13, 5);
  const auto local = run(config("local-sgd", 5, 0.0), 3, 13, 5);
  for (std::size_t i = 0; i < 13; ++i) {
    double m = 0;
    for (int k = 0; k < 3; ++k) m += cocod.x[k][i];
    EXPECT_NEAR(m / 3, local.x[0][i], 1e-5 * (1 + std::abs(local.x[0][i])));
  }
}

TEST(LocalSgd, BadConfigurationIsRejected) {
  LoopbackWorld::spawn(1, [](Backend& b) {
    auto expect_bad = [&](OptimConfig c, const std::string& needle) {
      try {
        sparcol::optim::make_optimizer(b, Layout::flat(10), c);
        ADD_FAILURE() << "accepted: " << needle;
      } catch (const sparcol::Error& e) {
        EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
      }
    };
    expect_bad(config("local-sgd", 0, 0.0), "period");
    auto c = config("stl-sgd", 2, 0.0);
    c.stl_stages = 3;
    expect_bad(c, "total number of steps");
    c.stl_stages = 0;
    expect_bad(c, "stages");
  });
}

}  // namespace

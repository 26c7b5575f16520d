// powersgd (ALGORITHMS.md 10.3) on LoopbackBackend: a hand-worked rank-1 step, r >= min(n, m)
// reproduces the dense mean, the invariant mean_k E_k + Ghat = mean_k M_k after every step in both
// error forms, error feedback and warm start off, vectors all-reduced densely, the accounting,
// replicas bitwise identical, resume from (E, m, Q) bitwise, and the configuration errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

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

// A 5 x 3 matrix, a bias of 4, a 4 x 6 matrix: 15 + 4 + 24 = 43 elements.
Layout layout() {
  Layout l;
  l.tensors = {{"w1", 0, 15, 2}, {"b1", 15, 4, 1}, {"w2", 19, 24, 4}};
  l.rows = {5, 0, 4};
  return l;
}

OptimConfig cfg(int rank, double momentum = 0.0) {
  OptimConfig c;
  c.method = "powersgd";
  c.momentum = momentum;
  c.low_rank = rank;
  c.exchange.seed = 9;
  return c;
}

Vec grad_of(int rank, std::uint64_t t, std::uint64_t d) {
  sparcol::CounterRng rng(3, sparcol::kStreamUser,
                          static_cast<std::uint32_t>(rank * 100 + static_cast<int>(t)));
  Vec g(d);
  for (auto& v : g) v = static_cast<float>(rng.normal());
  return g;
}

struct StepLog {
  Vec x_before, x_after;
  std::vector<Vec> m;  // per rank M_k = G_k + E_k(before)
  std::vector<Vec> e;  // per rank E_k after
};

struct Result {
  std::vector<Vec> x;
  std::vector<std::map<std::string, Vec>> state;
  std::vector<StepLog> log;
  std::vector<sparcol::optim::CommStats> comm;
};

// Steps [first, last); lr 0.5; momentum as configured. Logs M_k and E_k per step.
Result run(const OptimConfig& c, int K, const Layout& l, std::uint64_t first, std::uint64_t last,
           const std::vector<std::map<std::string, Vec>>& init_state = {}, const std::vector<Vec>& x0 = {}) {
  Result res;
  const std::uint64_t d = l.total();
  res.x.resize(static_cast<std::size_t>(K));
  res.state.resize(static_cast<std::size_t>(K));
  res.log.resize(last - first);
  for (auto& s : res.log) {
    s.m.resize(static_cast<std::size_t>(K));
    s.e.resize(static_cast<std::size_t>(K));
  }
  LoopbackWorld::spawn(K, [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    auto opt = sparcol::optim::make_optimizer(b, l, c);
    if (!init_state.empty())
      for (auto& s : opt->state())
        std::copy(init_state[r].at(s.name).begin(), init_state[r].at(s.name).end(), s.data.begin());
    Vec x = x0.empty() ? Vec(d, 0.0f) : x0[r];
    for (std::uint64_t t = first; t < last; ++t) {
      auto& lg = res.log[t - first];
      const Vec g = grad_of(b.rank(), t, d);
      Vec e_before(opt->state().at(0).data.begin(), opt->state().at(0).data.end());
      Vec m(d);
      for (std::size_t j = 0; j < d; ++j) m[j] = g[j] + e_before[j];
      lg.m[r] = m;
      if (r == 0) lg.x_before = x;
      auto st = opt->step(x, g, t, 0.5);
      if (r == 0) {
        lg.x_after = x;
        res.comm.push_back(st.comm);
      }
      lg.e[r] = Vec(opt->state().at(0).data.begin(), opt->state().at(0).data.end());
    }
    res.x[r] = x;
    for (auto& s : opt->state()) res.state[r][s.name] = Vec(s.data.begin(), s.data.end());
  });
  return res;
}

// With momentum 0 the update is x <- x - eta (Ghat + Ghat): Ghat = (x_before - x_after) / (2 eta).
Vec ghat_of(const StepLog& s) {
  Vec g(s.x_before.size());
  for (std::size_t j = 0; j < g.size(); ++j) g[j] = (s.x_before[j] - s.x_after[j]) / 1.0f;  // 2 * 0.5
  return g;
}

Vec mean_of(const std::vector<Vec>& v) {
  Vec m(v[0].size(), 0.0f);
  for (const auto& x : v)
    for (std::size_t j = 0; j < m.size(); ++j) m[j] += x[j];
  for (auto& x : m) x /= static_cast<float>(v.size());
  return m;
}

TEST(PowerSgd, FullRankReproducesTheDenseMean) {
  const auto res = run(cfg(6), 3, layout(), 0, 3);
  for (const auto& s : res.log) {
    const Vec gh = ghat_of(s), mean = mean_of(s.m);
    for (std::size_t j = 0; j < gh.size(); ++j) EXPECT_NEAR(gh[j], mean[j], 2e-5) << "element " << j;
  }
}

TEST(PowerSgd, ErrorInvariantBothForms) {
  for (bool paper : {true, false}) {
    auto c = cfg(1);
    c.powersgd_error_form_paper = paper;
    const auto res = run(c, 4, layout(), 0, 6);
    for (std::size_t t = 0; t < res.log.size(); ++t) {
      const auto& s = res.log[t];
      const Vec gh = ghat_of(s), mm = mean_of(s.m), me = mean_of(s.e);
      double err = 0, dense_part = 0;
      for (std::size_t j = 0; j < gh.size(); ++j) {
        EXPECT_NEAR(me[j] + gh[j], mm[j], 2e-5)
            << (paper ? "paper" : "library") << " step " << t << " element " << j;
        err = std::max(err, static_cast<double>(std::fabs(me[j])));
        if (j >= 15 && j < 19) dense_part += std::fabs(s.e[0][j]);
      }
      EXPECT_GT(err, 1e-3) << "rank 1 must leave an error";
      EXPECT_EQ(dense_part, 0.0) << "the bias is all-reduced densely";
    }
    if (paper) {
      // The paper form: every rank's error is M_k - Ghat.
      const auto& s = res.log[0];
      const Vec gh = ghat_of(s);
      for (int r = 0; r < 4; ++r)
        for (std::size_t j = 0; j < gh.size(); ++j)
          if (j < 15 || j >= 19) {
            EXPECT_NEAR(s.e[static_cast<std::size_t>(r)][j], s.m[static_cast<std::size_t>(r)][j] - gh[j],
                        2e-5);
          }
    }
  }
}

// K = 1, one 2 x 2 matrix, rank 1, Q drawn: P = M Q / (|M Q| + 1e-8), Q' = M^T P, Ghat = P Q'^T.
TEST(PowerSgd, HandWorkedRankOneStep) {
  Layout l;
  l.tensors = {{"w", 0, 4, 2}};
  l.rows = {2};
  auto c = cfg(1);
  const Vec M{3, 1, 1, 3};  // eigenvectors (1, 1) (value 4) and (1, -1) (value 2)
  LoopbackWorld::spawn(1, [&](Backend& b) {
    auto opt = sparcol::optim::make_optimizer(b, l, c);
    const Vec q0(opt->state().at(2).data.begin(), opt->state().at(2).data.end());
    ASSERT_EQ(q0.size(), 2u);
    Vec x(4, 0.0f);
    opt->step(x, M, 0, 0.5);
    const double p0 = 3 * q0[0] + 1 * q0[1], p1 = 1 * q0[0] + 3 * q0[1];
    const double norm = std::sqrt(p0 * p0 + p1 * p1) + 1e-8;
    const double P[2] = {p0 / norm, p1 / norm};
    const double Q[2] = {3 * P[0] + 1 * P[1], 1 * P[0] + 3 * P[1]};
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        const double gh = P[i] * Q[j];
        EXPECT_NEAR(x[static_cast<std::size_t>(i * 2 + j)], -0.5 * 2 * gh,
                    1e-5);  // momentum 0: x = -eta 2 Ghat
        EXPECT_NEAR(opt->state().at(0).data[static_cast<std::size_t>(i * 2 + j)],
                    M[static_cast<std::size_t>(i * 2 + j)] - gh, 1e-5);
      }
    // Warm start: the stored Q is the averaged Q' of this step.
    EXPECT_NEAR(opt->state().at(2).data[0], Q[0], 1e-5);
    EXPECT_NEAR(opt->state().at(2).data[1], Q[1], 1e-5);
  });
}

TEST(PowerSgd, SwitchesAndAccounting) {
  auto no_ef = cfg(1);
  no_ef.powersgd_error_feedback = false;
  const auto a = run(no_ef, 2, layout(), 0, 3);
  for (const auto& e : a.state[0].at("error")) EXPECT_EQ(e, 0.0f);
  auto cold = cfg(1);
  cold.powersgd_warm_start = false;
  const auto b = run(cold, 2, layout(), 0, 2);
  const auto w = run(cfg(1), 2, layout(), 0, 2);
  EXPECT_NE(b.state[0].at("q"), w.state[0].at("q"));
  // (n + m) r' per matrix plus the dense tensor: (5 + 3) + 4 + (4 + 6) = 22 elements at rank 1.
  EXPECT_DOUBLE_EQ(w.comm.at(0).elements_up, 22.0);
  EXPECT_EQ(w.comm.at(0).bytes_up, 88u);
  // Two all-reduces per step (P with the dense tensor, then Q), each a round, and their time recorded.
  EXPECT_EQ(w.comm.at(0).rounds, 2u);
  EXPECT_GT(w.comm.at(0).time_comm_s, 0.0);
  EXPECT_GE(w.comm.at(0).time_compress_s, 0.0);
  const auto r2 = run(cfg(2), 2, layout(), 0, 1);
  EXPECT_DOUBLE_EQ(r2.comm.at(0).elements_up, 2.0 * 8 + 4 + 2.0 * 10);
  // Rank 6 caps at min(n, m): 3 and 4.
  const auto r6 = run(cfg(6), 2, layout(), 0, 1);
  EXPECT_DOUBLE_EQ(r6.comm.at(0).elements_up, 3.0 * 8 + 4 + 4.0 * 10);
}

TEST(PowerSgd, ReplicasIdenticalAndResumeBitwise) {
  const auto c = cfg(2, 0.9);
  const auto full = run(c, 3, layout(), 0, 8);
  for (int r = 1; r < 3; ++r) EXPECT_EQ(full.x[static_cast<std::size_t>(r)], full.x[0]);
  const auto a = run(c, 3, layout(), 0, 5);
  const auto b = run(c, 3, layout(), 5, 8, a.state, a.x);
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(b.x[static_cast<std::size_t>(r)], full.x[static_cast<std::size_t>(r)]);
    EXPECT_EQ(b.state[static_cast<std::size_t>(r)], full.state[static_cast<std::size_t>(r)]);
  }
}

TEST(PowerSgd, MismatchedRanksAreNamed) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      auto opt = sparcol::optim::make_optimizer(b, layout(), cfg(b.rank() == 0 ? 1 : 2));
      Vec x(43, 0.0f), g(43, 1.0f);
      opt->step(x, g, 0, 0.1);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("ring_allreduce"), std::string::npos) << e.what();
  }
}

TEST(PowerSgd, ConfigurationErrors) {
  LoopbackWorld::spawn(1, [](Backend& b) {
    auto c = cfg(0);
    try {
      sparcol::optim::make_optimizer(b, layout(), c);
      ADD_FAILURE() << "expected an error";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("low rank must be >= 1"), std::string::npos) << e.what();
    }
    auto w = cfg(1);
    w.weight_decay = 0.1;
    w.wd_outside = true;
    EXPECT_THROW(sparcol::optim::make_optimizer(b, layout(), w), sparcol::Error);
  });
}

}  // namespace

// The sign-ring optimizers (issue 13): marsit and sign-cascade (ALGORITHMS.md 10.1) on
// LoopbackBackend: a hand-worked step, Marsit on one rank equals EF-signSGD, compression off,
// replicas bitwise identical, the error identities of both compensations, the accounting, resume,
// and the configuration errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>

#include "sparcol/coll/sign_ring_allreduce.hpp"
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

OptimConfig cfg(const std::string& method, const std::string& compressor = "sign") {
  OptimConfig c;
  c.method = method;
  c.momentum = 0.0;
  c.exchange.compressor.name = compressor;
  c.exchange.seed = 5;
  return c;
}

using GradFn = std::function<Vec(int rank, std::uint64_t t, const Vec& x)>;

struct Result {
  std::vector<Vec> x, e;                        // per rank: model, error
  std::vector<sparcol::optim::CommStats> comm;  // rank 0, per step
};

// Steps [first, last) on K ranks from (x0, e0) (empty: zeros).
Result run(const OptimConfig& c, int K, const Layout& l, std::uint64_t first, std::uint64_t last,
           const GradFn& grad, double lr = 0.5, const std::vector<Vec>& x0 = {},
           const std::vector<Vec>& e0 = {}) {
  Result res;
  res.x.resize(static_cast<std::size_t>(K));
  res.e.resize(static_cast<std::size_t>(K));
  const std::uint64_t d = l.total();
  LoopbackWorld::spawn(K, [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    auto opt = sparcol::optim::make_optimizer(b, l, c);
    Vec x = x0.empty() ? Vec(d, 0.0f) : x0[r];
    if (!e0.empty()) {
      auto st = opt->state();
      std::copy(e0[r].begin(), e0[r].end(), st.at(0).data.begin());
    }
    for (std::uint64_t t = first; t < last; ++t) {
      const Vec g = grad(b.rank(), t, x);
      auto s = opt->step(x, g, t, lr);
      if (r == 0) res.comm.push_back(s.comm);
    }
    res.x[r] = x;
    auto st = opt->state();
    res.e[r] = Vec(st.at(0).data.begin(), st.at(0).data.end());
  });
  return res;
}

Vec noise_grad(int rank, std::uint64_t t, std::uint64_t d) {
  sparcol::CounterRng rng(77, sparcol::kStreamUser,
                          static_cast<std::uint32_t>(rank * 1000 + static_cast<int>(t)));
  Vec g(d);
  for (auto& v : g) v = static_cast<float>(rng.normal()) + (rank % 2 == 0 ? 0.3f : -0.2f);
  return g;
}

// K = 2, d = 4, eta = 0.5: the ranks' signs agree except at element 2.
TEST(MarsitOptim, HandWorkedStep) {
  const Vec g0{1, -3, 2, 0}, g1{3, -1, -2, 2};
  for (const std::string comp : {"local", "global"}) {
    auto c = cfg("marsit");
    c.marsit_compensation = comp;
    const auto res =
        run(c, 2, Layout::flat(4), 0, 1, [&](int r, std::uint64_t, const Vec&) { return r == 0 ? g0 : g1; });
    // p0 = (0.5, -1.5, 1, 0): lambda0 = 3/4; p1 = (1.5, -0.5, -1, 1): lambda1 = 1; lambda = 7/8.
    // B = (+, -, ?, +) where ? is the merge's draw, recomputed here.
    const std::vector<std::vector<std::uint32_t>> bits{{0b1101u}, {0b1001u}};
    const auto B = sparcol::coll::marsit_reference(bits, 4, 5, 0, 0);
    const float s2 = ((B[0] >> 2) & 1u) != 0 ? 1.0f : -1.0f;
    const Vec want_x{-0.875f, 0.875f, -0.875f * s2, -0.875f};
    for (int r = 0; r < 2; ++r)
      EXPECT_EQ(res.x[static_cast<std::size_t>(r)], want_x) << comp << " rank " << r;
    if (comp == "local") {
      EXPECT_EQ(res.e[0], (Vec{-0.25f, -0.75f, 0.25f, -0.75f}));
      EXPECT_EQ(res.e[1], (Vec{0.5f, 0.5f, 0.0f, 0.0f}));
    } else {
      const Vec agg{0.875f, -0.875f, 0.875f * s2, 0.875f};
      const Vec p0{0.5f, -1.5f, 1.0f, 0.0f}, p1{1.5f, -0.5f, -1.0f, 1.0f};
      for (int j = 0; j < 4; ++j) {
        EXPECT_EQ(res.e[0][static_cast<std::size_t>(j)],
                  p0[static_cast<std::size_t>(j)] - agg[static_cast<std::size_t>(j)]);
        EXPECT_EQ(res.e[1][static_cast<std::size_t>(j)],
                  p1[static_cast<std::size_t>(j)] - agg[static_cast<std::size_t>(j)]);
      }
    }
  }
}

// sign-cascade, K = 2, d = 4: chunk 0 (all 4 elements, one 64-bit word) starts at rank 0, is
// decoded at rank 1, which adds p1 and re-compresses; the update is that message / 2.
TEST(SignCascadeOptim, HandWorkedStep) {
  const Vec g0{1, -3, 2, 0}, g1{3, -1, -2, 2};
  const auto res = run(cfg("sign-cascade"), 2, Layout::flat(4), 0, 1,
                       [&](int r, std::uint64_t, const Vec&) { return r == 0 ? g0 : g1; });
  // C(p0) = 0.75 * (+, -, +, +); + p1 = (2.25, -1.25, -0.25, 1.75): scale 5.5 / 4 = 1.375,
  // signs (+, -, -, +); the mean is 0.6875 * (+, -, -, +) and x = -that.
  const Vec want{-0.6875f, 0.6875f, 0.6875f, -0.6875f};
  EXPECT_EQ(res.x[0], want);
  EXPECT_EQ(res.x[1], want);
  EXPECT_EQ(res.e[0], (Vec{-0.25f, -0.75f, 0.25f, -0.75f}));  // local EF-signSGD errors
  EXPECT_EQ(res.e[1], (Vec{0.5f, 0.5f, 0.0f, 0.0f}));
}

TEST(MarsitOptim, OneRankEqualsEfSignSgd) {
  const std::uint64_t d = 1000;
  auto grad = [&](int r, std::uint64_t t, const Vec&) { return noise_grad(r, t, d); };
  const auto ef = run(cfg("ef-sgd"), 1, Layout::flat(d), 0, 20, grad, 0.1);
  const auto res1 = run(cfg("marsit"), 1, Layout::flat(d), 0, 20, grad, 0.1);
  EXPECT_EQ(res1.x[0], ef.x[0]);
  EXPECT_EQ(res1.e[0], ef.e[0]);
  const auto cas = run(cfg("sign-cascade"), 1, Layout::flat(d), 0, 20, grad, 0.1);
  EXPECT_EQ(cas.x[0], ef.x[0]);
  EXPECT_EQ(cas.e[0], ef.e[0]);
  auto global = cfg("marsit");
  global.marsit_compensation = "global";
  const auto res = run(global, 1, Layout::flat(d), 0, 20, grad, 0.1);
  EXPECT_EQ(res.x[0], ef.x[0]);
  EXPECT_EQ(res.e[0], ef.e[0]);
}

TEST(MarsitOptim, CompressionOffIsDsgd) {
  const std::uint64_t d = 300;
  auto grad = [&](int r, std::uint64_t t, const Vec&) { return noise_grad(r, t, d); };
  const auto ef = run(cfg("ef-sgd", "none"), 3, Layout::flat(d), 0, 5, grad, 0.1);
  auto dsgd_cfg = cfg("dmsgd", "none");
  const auto dsgd = run(dsgd_cfg, 3, Layout::flat(d), 0, 5, grad, 0.1);
  for (const char* m : {"marsit", "sign-cascade"}) {
    const auto res = run(cfg(m, "none"), 3, Layout::flat(d), 0, 5, grad, 0.1);
    EXPECT_EQ(res.x[0], ef.x[0]) << m;  // the same code path as EF-SGD without compression
    for (std::size_t j = 0; j < d; ++j) EXPECT_NEAR(res.x[0][j], dsgd.x[0][j], 1e-5) << m << " element " << j;
    for (float e : res.e[0]) EXPECT_EQ(e, 0.0f) << m;
  }
}

TEST(MarsitOptim, ReplicasIdenticalAndErrorIdentities) {
  const std::uint64_t d = 777;  // not a multiple of 64 nor of the rank counts
  for (int K : {3, 4}) {
    for (const char* m : {"marsit", "sign-cascade"}) {
      for (const std::string comp : {"local", "global"}) {
        if (comp == "global" && std::string(m) != "marsit") continue;
        auto c = cfg(m);
        c.marsit_compensation = comp;
        // One step from zero state: e_k = p_k - (lambda_k b_k | lambda B) with p_k = eta g_k.
        auto grad = [&](int r, std::uint64_t t, const Vec&) { return noise_grad(r, t, d); };
        const auto res = run(c, K, Layout::flat(d), 0, 8, grad, 0.1);
        for (int r = 1; r < K; ++r)
          EXPECT_EQ(res.x[static_cast<std::size_t>(r)], res.x[0]) << m << " K=" << K;
        const auto one = run(c, K, Layout::flat(d), 0, 1, grad, 0.1);
        for (int r = 0; r < K; ++r) {
          const Vec g = noise_grad(r, 0, d);
          double l1 = 0;
          for (float v : g) l1 += std::fabs(0.1f * v);
          for (std::size_t j = 0; j < d; ++j) {
            const float p = 0.1f * g[j];
            const float e = one.e[static_cast<std::size_t>(r)][j];
            if (comp == "local") {
              EXPECT_NEAR(std::fabs(p - e), l1 / static_cast<double>(d), 1e-6) << m << " rank " << r;
            } else {
              EXPECT_EQ(e, p - (-one.x[0][j])) << "global: e = p - lambda B (x = -lambda B after one step)";
            }
          }
        }
      }
    }
  }
}

TEST(MarsitOptim, Accounting) {
  const std::uint64_t d = 1000;  // 16 words of 64 bits: 4 per chunk on 4 ranks
  auto grad = [&](int r, std::uint64_t t, const Vec&) { return noise_grad(r, t, d); };
  const auto res = run(cfg("marsit"), 4, Layout::flat(d), 0, 1, grad);
  const auto& st = res.comm.at(0);
  EXPECT_DOUBLE_EQ(st.elements_up, sparcol::SignBits::wire_elements(d));
  EXPECT_DOUBLE_EQ(st.elements_down, sparcol::SignBits::wire_elements(d));
  EXPECT_EQ(st.bytes_up, sparcol::SignBits::wire_bytes(d));
  EXPECT_EQ(st.bytes_sent, 3u * 32 + 3u * 32 + 3u * 4);  // RS + AG chunks of 4 words, K-1 scales
  const auto cas = run(cfg("sign-cascade"), 4, Layout::flat(d), 0, 1, grad);
  // Element chunks of 256, 256, 256, 232: each message 4 * ceil(len / 32) + 4 bytes.
  EXPECT_EQ(cas.comm.at(0).bytes_sent, 3u * 36 + 3u * 36);  // rank 0 sends chunks 0, 3, 2 then 1, 0, 3
  EXPECT_DOUBLE_EQ(cas.comm.at(0).elements_down, 1000.0 / 32 + 4);
}

TEST(MarsitOptim, ResumeIsBitwise) {
  const std::uint64_t d = 200;
  auto grad = [&](int r, std::uint64_t t, const Vec& x) {
    Vec g = noise_grad(r, t, d);
    for (std::size_t j = 0; j < d; ++j) g[j] += x[j];
    return g;
  };
  for (const char* m : {"marsit", "sign-cascade"}) {
    const auto full = run(cfg(m), 3, Layout::flat(d), 0, 10, grad, 0.1);
    const auto a = run(cfg(m), 3, Layout::flat(d), 0, 6, grad, 0.1);
    const auto b = run(cfg(m), 3, Layout::flat(d), 6, 10, grad, 0.1, a.x, a.e);
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(b.x[static_cast<std::size_t>(r)], full.x[static_cast<std::size_t>(r)]) << m;
      EXPECT_EQ(b.e[static_cast<std::size_t>(r)], full.e[static_cast<std::size_t>(r)]) << m;
    }
  }
}

TEST(MarsitOptim, LayerwiseGroupsUseTheirOwnRings) {
  Layout l;
  l.tensors = {{"w", 0, 130, 2}, {"b", 130, 10, 1}, {"v", 140, 65, 2}};
  auto c = cfg("marsit");
  c.exchange.layerwise = true;
  c.exchange.compress_only_matrices = true;
  auto grad = [&](int r, std::uint64_t t, const Vec&) { return noise_grad(r, t, 205); };
  const auto res = run(c, 3, l, 0, 4, grad, 0.1);
  for (int r = 1; r < 3; ++r) EXPECT_EQ(res.x[static_cast<std::size_t>(r)], res.x[0]);
  // The dense tensor b carries no error.
  for (int r = 0; r < 3; ++r)
    for (std::size_t j = 130; j < 140; ++j) EXPECT_EQ(res.e[static_cast<std::size_t>(r)][j], 0.0f);
}

TEST(MarsitOptim, ConfigurationErrors) {
  LoopbackWorld::spawn(1, [](Backend& b) {
    auto expect_invalid = [&](const OptimConfig& c, const std::string& part) {
      try {
        sparcol::optim::make_optimizer(b, Layout::flat(10), c);
        ADD_FAILURE() << "expected an error naming '" << part << "'";
      } catch (const sparcol::Error& e) {
        EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      }
    };
    // Any compressor but "none" runs as sign (as the dense methods run as none).
    EXPECT_EQ(sparcol::optim::method_compressor("marsit", "topk"), "sign");
    EXPECT_EQ(sparcol::optim::method_compressor("sign-cascade", "none"), "none");
    EXPECT_EQ(sparcol::optim::method_compressor("powersgd", "topk"), "low-rank");
    EXPECT_NO_THROW(sparcol::optim::make_optimizer(b, Layout::flat(10), cfg("marsit", "topk")));
    auto g = cfg("sign-cascade");
    g.marsit_compensation = "global";
    expect_invalid(g, "global compensation is Marsit's");
    auto u = cfg("marsit");
    u.marsit_compensation = "both";
    expect_invalid(u, "'local' or 'global'");
  });
}

}  // namespace

// LIEC-SGD (ALGORITHMS.md 10.2, issue 13) on LoopbackBackend: the sharded server's collective against
// a host reference with 1 to 8 ranks, a hand-worked optimizer step, compression off equals DMSGD,
// the server error's conservation, replicated models, resume from the state, and the errors.
#include <gtest/gtest.h>

#include <functional>
#include <tuple>

#include "../common/coll_checks.hpp"
#include "../common/liec_checks.hpp"
#include "sparcol/coll/liec_allreduce.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/compress/compressor.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::comm::Backend;
using sparcol::comm::LoopbackWorld;
using sparcol::optim::Layout;
using sparcol::optim::OptimConfig;
using sparcol::test::CheckResult;
using Vec = std::vector<float>;
namespace coll = sparcol::coll;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

// ---------------------------------------------------------------------------------------------
// The collective
// ---------------------------------------------------------------------------------------------
struct Mode {
  bool sparse_up, sparse_down;
  int pct_up, pct_down;
  const char* name;
};
const Mode kModes[] = {{true, true, 0, 0, "sparse_k0"},       {true, true, 10, 30, "sparse"},
                       {true, true, 100, 100, "sparse_full"}, {false, false, 100, 100, "dense"},
                       {true, false, 20, 100, "sparse_up"},   {false, true, 100, 5, "sparse_down"}};

class LiecColl : public ::testing::TestWithParam<std::tuple<int, std::uint64_t, int>> {};

TEST_P(LiecColl, EqualsHostReference) {
  const int ranks = std::get<0>(GetParam());
  const std::uint64_t n = std::get<1>(GetParam());
  const Mode m = kModes[std::get<2>(GetParam())];
  std::vector<CheckResult> per(static_cast<std::size_t>(ranks));
  LoopbackWorld::spawn(ranks, [&](Backend& b) {
    per[static_cast<std::size_t>(b.rank())] =
        sparcol::test::check_liec(b, n, m.sparse_up, m.sparse_down, m.pct_up, m.pct_down, kSeed);
  });
  CheckResult all;
  for (const auto& r : per) all.merge(r);
  EXPECT_EQ(all.wrong, 0u) << all.first << " (seed " << kSeed << ", " << m.name << ")";
}

// Sizes below the rank count (empty chunks), not divisible by it, and larger.
INSTANTIATE_TEST_SUITE_P(Loopback, LiecColl,
                         ::testing::Combine(::testing::Values(1, 2, 3, 4, 5, 7, 8),
                                            ::testing::Values(0, 1, 5, 100, 1001),
                                            ::testing::Range(0, static_cast<int>(std::size(kModes)))),
                         [](const auto& p) {
                           return "ranks" + std::to_string(std::get<0>(p.param)) + "_n" +
                                  std::to_string(std::get<1>(p.param)) + "_" +
                                  kModes[std::get<2>(p.param)].name;
                         });

TEST(LiecCollMismatch, DifferentStepsAreNamed) {
  try {
    LoopbackWorld::spawn(3, [](Backend& b) {
      coll::LiecAllreduce lr(b, 100, coll::LiecAllreduce::Payload::kSparse,
                             coll::LiecAllreduce::Payload::kSparse);
      lr.reduce(sparcol::SparseChunk{}, b.rank() == 2 ? 8 : 7);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("liec_allreduce"), std::string::npos) << e.what();
  }
}

TEST(LiecCollMismatch, DifferentCountsAndKindsAreNamed) {
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      const std::uint64_t n = b.rank() == 0 ? 100 : 101;
      Vec v(n, 1.0f);
      coll::LiecAllreduce lr(b, n, coll::LiecAllreduce::Payload::kDense,
                             coll::LiecAllreduce::Payload::kDense);
      lr.reduce(v, 0);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
    EXPECT_NE(std::string(e.what()).find("count=101"), std::string::npos) << e.what();
  }
  try {
    LoopbackWorld::spawn(2, [](Backend& b) {
      using P = coll::LiecAllreduce::Payload;
      Vec v(10, 1.0f);
      coll::LiecAllreduce lr(b, 10, P::kDense, b.rank() == 0 ? P::kDense : P::kSparse);
      lr.reduce(v, 0);
    });
    FAIL() << "expected a mismatch error";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kMismatch) << e.what();
  }
}

TEST(LiecCollMismatch, BadIndicesAreRefused) {
  LoopbackWorld::spawn(2, [](Backend& b) {
    using P = coll::LiecAllreduce::Payload;
    coll::LiecAllreduce lr(b, 10, P::kSparse, P::kSparse);
    const std::vector<sparcol::Index> bad{10};
    const Vec v{1.0f};
    EXPECT_THROW(lr.reduce(sparcol::SparseChunk{bad, v}, 0), sparcol::Error);
    // A downward index outside the owner's chunk (rank 0 owns [0, 5), rank 1 [5, 10)).
    const std::vector<sparcol::Index> other{b.rank() == 0 ? 7u : 2u};
    Vec out(10);
    EXPECT_THROW(lr.gather(sparcol::SparseChunk{other, v}, out, 0), sparcol::Error);
  });
}

// ---------------------------------------------------------------------------------------------
// The optimizer
// ---------------------------------------------------------------------------------------------
OptimConfig liec(const std::string& up, double rho_up, const std::string& down, double rho_down) {
  OptimConfig c;
  c.method = "liec";
  c.momentum = 0.0;
  c.exchange.compressor.name = up;
  c.exchange.compressor.density = rho_up;
  c.liec_down = {down, rho_down};
  c.exchange.seed = 5;
  return c;
}

Vec noise_grad(int rank, std::uint64_t t, const Vec& x) {
  sparcol::CounterRng rng(77, sparcol::kStreamUser,
                          static_cast<std::uint32_t>(rank * 1000 + static_cast<int>(t)));
  Vec g(x.size());
  for (std::size_t i = 0; i < g.size(); ++i)
    g[i] = 0.5f * x[i] + static_cast<float>(rng.normal()) + (rank % 2 == 0 ? 0.3f : -0.2f);
  return g;
}

struct Run {
  std::vector<Vec> x, z;  // per rank: model after the last step, the next gradient point
  std::vector<std::map<std::string, Vec>> state;
  std::vector<sparcol::optim::CommStats> comm;  // rank 0, per step
};

// Steps [first, last) on K ranks from x0 (zeros when empty) and a state (empty: zeros).
Run run(const OptimConfig& c, int K, std::uint64_t d, std::uint64_t first, std::uint64_t last,
        double lr = 0.1, const std::vector<Vec>& x0 = {},
        const std::vector<std::map<std::string, Vec>>& s0 = {}) {
  Run res;
  res.x.resize(static_cast<std::size_t>(K));
  res.z.resize(static_cast<std::size_t>(K));
  res.state.resize(static_cast<std::size_t>(K));
  LoopbackWorld::spawn(K, [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    auto opt = sparcol::optim::make_optimizer(b, Layout::flat(d), c);
    Vec x = x0.empty() ? Vec(d, 0.0f) : x0[r];
    if (!s0.empty())
      for (auto& s : opt->state()) {
        const Vec& v = s0[r].at(s.name);
        std::copy(v.begin(), v.end(), s.data.begin());
      }
    for (std::uint64_t t = first; t < last; ++t) {
      const auto z = opt->gradient_point(x, lr);
      const Vec g = noise_grad(b.rank(), t, Vec(z.begin(), z.end()));
      const auto st = opt->step(x, g, t, lr);
      if (r == 0) res.comm.push_back(st.comm);
    }
    res.x[r] = x;
    const auto z = opt->gradient_point(x, lr);
    res.z[r] = Vec(z.begin(), z.end());
    for (auto& s : opt->state()) res.state[r][s.name] = Vec(s.data.begin(), s.data.end());
  });
  return res;
}

// K = 2, d = 4, top-k 50 % up (k = 2), top-k 50 % down per chunk (k_r = 1), eta = 0.5, beta = 0.
TEST(LiecOptim, HandWorkedStep) {
  const Vec g0{4, -1, 2, 0.5f}, g1{1, 3, -6, 1};
  std::vector<Vec> x(2), z(2), es(2);
  std::vector<sparcol::optim::CommStats> st(2);
  LoopbackWorld::spawn(2, [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    auto opt = sparcol::optim::make_optimizer(b, Layout::flat(4), liec("topk", 0.5, "topk", 0.5));
    Vec xi(4, 0.0f);
    st[r] = opt->step(xi, r == 0 ? g0 : g1, 0, 0.5).comm;
    x[r] = xi;
    const auto zi = opt->gradient_point(xi, 0.5);
    z[r] = Vec(zi.begin(), zi.end());
    const auto s = opt->state();
    es[r] = Vec(s.at(0).data.begin(), s.at(0).data.end());
  });
  // c_0 = (4, 0, 2, 0), delta_0 = (0, -1, 0, 0.5); c_1 = (0, 3, -6, 0), delta_1 = (1, 0, 0, 1).
  // Owner 0 ([0, 2)): w = (4, 3) / 2 = (2, 1.5), c = (2, 0), e_s = (0, 1.5).
  // Owner 1 ([2, 4)): w = (-4, 0) / 2 = (-2, 0), c = (-2, 0), e_s = (0, 0).
  // xh = -0.5 c = (-1, 0, 1, 0); x_i = xh - 0.5 delta_i.
  for (int r = 0; r < 2; ++r) EXPECT_EQ(x[static_cast<std::size_t>(r)], (Vec{-1, 0, 1, 0})) << r;
  EXPECT_EQ(z[0], (Vec{-1, 0.5f, 1, -0.25f}));
  EXPECT_EQ(z[1], (Vec{-1.5f, 0, 1, -0.5f}));
  EXPECT_EQ(es[0], (Vec{0, 1.5f}));
  EXPECT_EQ(es[1], (Vec{0, 0}));
  EXPECT_DOUBLE_EQ(st[0].elements_up, 4.0);
  EXPECT_DOUBLE_EQ(st[0].elements_up_all, 8.0);
  EXPECT_DOUBLE_EQ(st[0].elements_down, 4.0);  // two pairs: one per owner
  EXPECT_EQ(st[0].bytes_up, 16u);
  EXPECT_EQ(st[0].bytes_down, 16u);
  EXPECT_DOUBLE_EQ(st[0].dense_elements, 12.0);
  // Rank 0 sends 1 pair to owner 1 (index 2) + 16 bytes of counts, then its 1 pair + 8 bytes count.
  EXPECT_EQ(st[0].bytes_sent, 8u + 16u + 8u + 8u);
  EXPECT_EQ(st[0].bytes_sent_down, 16u);
  EXPECT_EQ(st[0].rounds, 2u);
}

// Both compressors "none": DMSGD (global momentum), bit for bit (the direct all-reduce sums in rank
// order, as the server's owners do), also with coupled weight decay.
TEST(LiecOptim, CompressionOffIsDmsgdBitwise) {
  for (int K : {1, 2, 3, 4, 5}) {
    for (double beta : {0.0, 0.9}) {
      for (double wd : {0.0, 1e-2}) {
        auto c = liec("none", 1.0, "none", 1.0);
        c.momentum = beta;
        c.weight_decay = wd;
        auto d = c;
        d.method = "dmsgd";
        const auto a = run(c, K, 1001, 0, 6);
        const auto b = run(d, K, 1001, 0, 6);
        for (int r = 0; r < K; ++r) {
          const auto i = static_cast<std::size_t>(r);
          EXPECT_EQ(a.x[i], b.x[i]) << "K=" << K << " beta=" << beta << " wd=" << wd << " rank " << r;
          EXPECT_EQ(a.z[i], a.x[i]) << "the gradient point is xh without compression";
        }
        EXPECT_DOUBLE_EQ(a.comm[0].rcc(), 1.0);
      }
    }
  }
}

// mean_i c_i + e_s(old) = c + e_s(new) on every owner's chunk, every step, bit for bit (c and e_s
// split w: one is w, the other exactly 0), and x, c bitwise the same on every rank. With x = 0 before
// each step, eta = 1 and beta = 0 the step leaves x = -c exactly.
TEST(LiecOptim, ServerErrorIsConserved) {
  for (const std::string up : {"topk", "randk"}) {
    const int K = 3;
    const std::uint64_t d = 101;
    auto c = liec(up, 0.1, "topk", 0.05);
    std::vector<CheckResult> per(K);
    LoopbackWorld::spawn(K, [&](Backend& b) {
      const int me = b.rank();
      auto& res = per[static_cast<std::size_t>(me)];
      auto opt = sparcol::optim::make_optimizer(b, Layout::flat(d), c);
      auto comp = sparcol::compress::make_compressor(c.exchange.compressor);
      coll::LiecAllreduce geo(b, d, coll::LiecAllreduce::Payload::kSparse,
                              coll::LiecAllreduce::Payload::kSparse);
      const std::uint64_t lo = geo.chunk_begin(me), len = geo.chunk_size(me);
      for (std::uint64_t t = 0; t < 8; ++t) {
        const Vec es_old(opt->state().at(0).data.begin(), opt->state().at(0).data.end());
        Vec x(d, 0.0f);
        const Vec g = noise_grad(me, t, x);
        opt->step(x, g, t, 1.0);
        // Every rank's g, compressed here as the optimizer does.
        std::vector<float> all(static_cast<std::size_t>(K) * d);
        std::vector<std::size_t> bytes(static_cast<std::size_t>(K), d * sizeof(float));
        b.allgatherv(g.data(), all.data(), bytes);
        Vec sum(d, 0.0f);
        for (int r = 0; r < K; ++r) {
          sparcol::compress::Message m;
          const std::span<const float> gr(all.data() + static_cast<std::size_t>(r) * d, d);
          comp->compress(gr, {5, t, 0, static_cast<std::uint32_t>(r), comp->target_k(d)}, m);
          for (std::size_t p = 0; p < m.indices.size(); ++p) sum[m.indices[p]] += m.values[p];
        }
        const Vec es_new(opt->state().at(0).data.begin(), opt->state().at(0).data.end());
        std::uint64_t sent = 0;
        for (std::uint64_t e = 0; e < len; ++e) {
          const float w = sum[lo + e] / static_cast<float>(K) + es_old[e];
          const float cj = -x[lo + e];
          sent += cj != 0.0f;
          if (cj + es_new[e] != w || (cj != 0.0f && es_new[e] != 0.0f))
            res.fail("step " + std::to_string(t) + " element " + std::to_string(lo + e) + ": c " +
                     std::to_string(cj) + " + e_s " + std::to_string(es_new[e]) + " != w " +
                     std::to_string(w));
        }
        if (len > 0 && sent > sparcol::compress::k_round(0.05, len))
          res.fail("owner sent " + std::to_string(sent) + " coordinates");
        std::vector<float> xs(static_cast<std::size_t>(K) * d);
        b.allgatherv(x.data(), xs.data(), bytes);
        for (int r = 0; r < K; ++r)
          if (!std::equal(x.begin(), x.end(),
                          xs.begin() + static_cast<std::ptrdiff_t>(static_cast<std::size_t>(r) * d)))
            res.fail("x differs from rank " + std::to_string(r));
      }
    });
    CheckResult all;
    for (const auto& r : per) all.merge(r);
    EXPECT_EQ(all.wrong, 0u) << up << ": " << all.first;
  }
}

TEST(LiecOptim, ReplicasIdenticalAndLocalModelsDiffer) {
  for (const std::string down : {"topk", "randk", "none"}) {
    auto c = liec("topk", 0.05, down, 0.05);
    c.momentum = 0.9;
    c.weight_decay = 1e-3;
    const auto a = run(c, 4, 1000, 0, 10);
    for (int r = 1; r < 4; ++r) {
      EXPECT_EQ(a.x[static_cast<std::size_t>(r)], a.x[0]) << down << " rank " << r;
      EXPECT_NE(a.z[static_cast<std::size_t>(r)], a.z[0]) << down << " rank " << r;
    }
    const double k = 50, d = 1000;
    EXPECT_DOUBLE_EQ(a.comm[0].elements_up, 2 * k);
    EXPECT_DOUBLE_EQ(a.comm[0].elements_up_all, 4 * 2 * k);
    // Down: 4 chunks of 250, k_r = round(0.05 * 250) = 13 (halves round up) pairs each.
    EXPECT_DOUBLE_EQ(a.comm[0].elements_down, down == "none" ? d : 2 * 4 * 13);
  }
}

TEST(LiecOptim, ResumesBitwiseFromItsState) {
  auto c = liec("topk", 0.05, "topk", 0.02);
  c.momentum = 0.9;
  const auto full = run(c, 3, 500, 0, 8);
  const auto half = run(c, 3, 500, 0, 4);
  const auto rest = run(c, 3, 500, 4, 8, 0.1, half.x, half.state);
  for (std::size_t r = 0; r < 3; ++r) {
    EXPECT_EQ(full.x[r], rest.x[r]) << r;
    EXPECT_EQ(full.z[r], rest.z[r]) << r;
    EXPECT_EQ(full.state[r], rest.state[r]) << r;
  }
}

TEST(LiecOptim, ConfigurationErrors) {
  LoopbackWorld::spawn(1, [](Backend& b) {
    auto expect_invalid = [&](const OptimConfig& c, const std::string& what) {
      try {
        (void)sparcol::optim::make_optimizer(b, Layout::flat(10), c);
        ADD_FAILURE() << "expected an error naming " << what;
      } catch (const sparcol::Error& e) {
        EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      }
    };
    expect_invalid(liec("topk", 0.1, "sign", 0.1), "--down-compressor");
    expect_invalid(liec("rbgs", 0.1, "topk", 0.1), "--compressor");
    expect_invalid(liec("topk", 0.1, "topk", 0.0), "--down-density");
    auto c = liec("topk", 0.1, "topk", 0.1);
    c.exchange.layerwise = true;
    expect_invalid(c, "flat");
    c = liec("topk", 0.1, "topk", 0.1);
    c.weight_decay = 1e-3;
    c.wd_outside = true;
    expect_invalid(c, "wd_outside");
  });
  EXPECT_NE(sparcol::optim::unsupported_reason(Layout::flat(10), liec("topk", 0.1, "topk", 0.1),
                                               sparcol::MemKind::kDevice),
            "");
}

}  // namespace

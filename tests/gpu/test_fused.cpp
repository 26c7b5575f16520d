// FusedOptimizer on the host executor (the CPU twins: the code the GPU runs) against the CPU
// optimizers of src/optim, bitwise: model, state, skipped steps and communication statistics, for
// every method and supported compressor, on 1, 2, 3 and 5 ranks of LoopbackBackend and on the NCCL
// emulation. DGC's clipping while active is compared with a tolerance (documented: its norm is summed
// in another order). Unsupported configurations are argument errors naming the reason.
// A fresh seed per run is printed on failure; SPARCOL_TEST_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "../common/coll_checks.hpp"
#include "emulated_nccl.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/fused.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::comm::Backend;
using sparcol::optim::FusedOptimizer;
using sparcol::optim::Layout;
using sparcol::optim::OptimConfig;
using Vec = std::vector<float>;

namespace {

const std::uint64_t kSeed = sparcol::test::test_seed();

std::string seed_note() {
  return " (seed " + std::to_string(kSeed) + "; rerun with SPARCOL_TEST_SEED=" + std::to_string(kSeed) + ")";
}

struct Outcome {
  std::vector<Vec> x, eval;
  std::vector<std::map<std::string, Vec>> state;
  std::vector<std::vector<sparcol::optim::StepStats>> stats;
  std::vector<std::uint64_t> skipped;
};

// The gradient depends on the point it is taken at (so detached points matter); rank `nan_rank`
// returns a NaN at step `nan_step`.
struct Grad {
  std::uint64_t seed;
  int nan_rank = -1;
  std::uint64_t nan_step = 0;
  Vec operator()(int rank, std::uint64_t t, const Vec& z) const {
    sparcol::CounterRng rng(seed, sparcol::kStreamUser, static_cast<std::uint32_t>(rank * 1000 + t));
    Vec g(z.size());
    for (std::size_t i = 0; i < z.size(); ++i)
      g[i] = static_cast<float>(rng.normal()) * (i % 17 == 0 ? 10.0f : 1.0f) + 0.5f * z[i];
    if (rank == nan_rank && t == nan_step && !g.empty())
      g[g.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    return g;
  }
};

Vec initial_x(std::uint64_t n) {
  Vec x(n);
  for (std::uint64_t i = 0; i < n; ++i) x[i] = 0.01f * static_cast<float>(i % 13);
  return x;
}

// Runs `steps` steps on every rank of a world (loopback or the NCCL emulation); fused or CPU.
Outcome run(bool fused, bool emulated, const OptimConfig& cfg, const Layout& layout, int K, int steps,
            const Grad& grad, double lr) {
  Outcome out;
  const auto k = static_cast<std::size_t>(K);
  out.x.resize(k);
  out.eval.resize(k);
  out.state.resize(k);
  out.stats.resize(k);
  out.skipped.resize(k);
  const std::uint64_t n = layout.total();
  auto body = [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    Vec x = initial_x(n);
    Vec eval(n);
    if (fused) {
      sparcol::device::Exec ex = sparcol::device::Exec::host();
      FusedOptimizer opt(b, layout, cfg, ex);
      for (int t = 0; t < steps; ++t) {
        const double lr_t = lr * (1.0 + 0.1 * t);
        const auto zs = opt.gradient_point(x, lr_t);
        const Vec g = grad(b.rank(), static_cast<std::uint64_t>(t), Vec(zs.begin(), zs.end()));
        out.stats[r].push_back(opt.step(x, g, static_cast<std::uint64_t>(t), lr_t, 0.5 * t));
      }
      opt.evaluation_model(x, eval, true);
      for (auto& s : opt.state()) out.state[r][s.name] = Vec(s.data.begin(), s.data.end());
      out.skipped[r] = opt.skipped_steps();
    } else {
      auto opt = sparcol::optim::make_optimizer(b, layout, cfg);
      for (int t = 0; t < steps; ++t) {
        const double lr_t = lr * (1.0 + 0.1 * t);
        const auto zs = opt->gradient_point(x, lr_t);
        const Vec g = grad(b.rank(), static_cast<std::uint64_t>(t), Vec(zs.begin(), zs.end()));
        out.stats[r].push_back(opt->step(x, g, static_cast<std::uint64_t>(t), lr_t, 0.5 * t));
      }
      opt->evaluation_model(x, eval, true);
      for (auto& s : opt->state()) out.state[r][s.name] = Vec(s.data.begin(), s.data.end());
      out.skipped[r] = opt->skipped_steps();
    }
    out.x[r] = x;
    out.eval[r] = eval;
  };
  if (emulated) {
    sparcol::test::run_emulated_nccl(K, body);
  } else {
    sparcol::comm::LoopbackWorld::spawn(K, body);
  }
  return out;
}

::testing::AssertionResult close(const Vec& got, const Vec& want, const std::string& what, double tol) {
  if (got.size() != want.size()) return ::testing::AssertionFailure() << what << ": sizes differ";
  for (std::size_t i = 0; i < got.size(); ++i) {
    const bool same = tol == 0.0 ? std::memcmp(&got[i], &want[i], sizeof(float)) == 0
                                 : std::abs(got[i] - want[i]) <= tol * (1.0 + std::abs(want[i]));
    if (!same)
      return ::testing::AssertionFailure()
             << what << " element " << i << ": fused " << got[i] << ", CPU " << want[i];
  }
  return ::testing::AssertionSuccess();
}

void expect_same(const Outcome& got, const Outcome& want, int K, double tol) {
  for (int r = 0; r < K; ++r) {
    const auto rr = static_cast<std::size_t>(r);
    const std::string rank = " rank " + std::to_string(r);
    EXPECT_TRUE(close(got.x[rr], want.x[rr], "x" + rank, tol)) << seed_note();
    EXPECT_TRUE(close(got.eval[rr], want.eval[rr], "evaluation model" + rank, tol)) << seed_note();
    ASSERT_EQ(got.state[rr].size(), want.state[rr].size());
    for (const auto& [name, vec] : want.state[rr]) {
      ASSERT_TRUE(got.state[rr].count(name)) << name;
      EXPECT_TRUE(close(got.state[rr].at(name), vec, name + rank, tol)) << seed_note();
    }
    EXPECT_EQ(got.skipped[rr], want.skipped[rr]);
    ASSERT_EQ(got.stats[rr].size(), want.stats[rr].size());
    for (std::size_t t = 0; t < want.stats[rr].size(); ++t) {
      const auto& a = got.stats[rr][t];
      const auto& b = want.stats[rr][t];
      SCOPED_TRACE("step " + std::to_string(t) + rank);
      EXPECT_EQ(a.skipped, b.skipped);
      EXPECT_EQ(a.bad_ranks, b.bad_ranks);
      EXPECT_EQ(a.comm.elements_up, b.comm.elements_up);
      EXPECT_EQ(a.comm.elements_up_all, b.comm.elements_up_all);
      // With clipping active the aggregate may differ in a few elements, and its nnz with it.
      if (tol == 0.0) {
        EXPECT_EQ(a.comm.elements_down, b.comm.elements_down);
        EXPECT_EQ(a.comm.bytes_down, b.comm.bytes_down);
      }
      EXPECT_EQ(a.comm.bytes_up, b.comm.bytes_up);
      EXPECT_EQ(a.comm.bytes_sent, b.comm.bytes_sent);
      EXPECT_EQ(a.comm.bytes_recv, b.comm.bytes_recv);
      EXPECT_EQ(a.comm.dense_elements, b.comm.dense_elements);
    }
  }
}

OptimConfig make_cfg(const std::string& method, const std::string& comp, double density) {
  OptimConfig c;
  c.method = method;
  c.momentum = 0.9;
  c.exchange.compressor.name = comp;
  c.exchange.compressor.density = density;
  c.exchange.seed = 1234;
  return c;
}

struct Case {
  std::string label;
  OptimConfig cfg;
  double tol = 0.0;
};

std::vector<Case> cases() {
  std::vector<Case> cs;
  for (const char* comp : {"rbgs", "topk", "topk-sampled", "none"}) {
    for (const char* m : {"gmc", "gmc-plus", "dgc", "dgc-mfm", "ef-sgd", "ef-sgdm", "def-a"})
      cs.push_back({std::string(m) + "/" + comp, make_cfg(m, comp, 0.05)});
  }
  auto wd = make_cfg("gmc-plus", "rbgs", 0.05);
  wd.weight_decay = 0.01;
  cs.push_back({"gmc-plus/rbgs/wd", wd});
  auto defa = make_cfg("def-a", "topk", 0.05);
  defa.weight_decay = 0.02;
  defa.alpha = 0.7;
  cs.push_back({"def-a/topk/wd/alpha", defa});
  auto nest = make_cfg("dgc-mfm", "rbgs", 0.05);
  nest.nesterov = true;
  nest.clip_norm = 1e6;  // never active: bitwise
  nest.weight_decay = 0.01;
  cs.push_back({"dgc-mfm/rbgs/nesterov/clip-inactive/wd", nest});
  auto clip = make_cfg("dgc-mfm", "topk", 0.05);
  clip.clip_norm = 0.5;  // active every step: the norm's summation order differs (documented)
  clip.weight_decay = 0.01;
  cs.push_back({"dgc-mfm/topk/clip-active/wd", clip, 2e-5});
  auto outside = make_cfg("dgc", "topk", 0.05);
  outside.weight_decay = 0.05;
  outside.wd_outside = true;
  cs.push_back({"dgc/topk/wd-outside", outside});
  auto warm = make_cfg("dgc", "topk-sampled", 0.02);
  warm.warmup_epochs = 2;
  cs.push_back({"dgc/topk-sampled/warm-up", warm});
  for (auto [c1, c2] : {std::pair{"zero", "rbgs"},
                        {"topk", "rbgs"},
                        {"rbgs", "topk"},
                        {"none", "topk-sampled"},
                        {"topk-sampled", "none"}}) {
    auto c = make_cfg("cser", "topk", 0.05);
    c.cser_c1 = {c1, 0.05};
    c.cser_c2 = {c2, 0.2};
    c.cser_period = 2;
    c.weight_decay = 0.01;
    cs.push_back({std::string("cser/") + c1 + "/" + c2, c});
  }
  auto dm = make_cfg("dmsgd", "topk", 0.05);  // the dense methods ignore the compressor
  dm.weight_decay = 0.01;
  cs.push_back({"dmsgd/wd", dm});
  cs.push_back({"dmsgd-local", make_cfg("dmsgd-local", "sign", 1.0)});
  return cs;
}

// A layout of several tensors (flat compression treats it as one vector).
Layout three_tensors(std::uint64_t n) {
  Layout l;
  const std::uint64_t a = n / 3, b = n / 2;
  l.tensors = {{"w1", 0, a, 2}, {"b1", a, b - a, 1}, {"w2", b, n - b, 2}};
  return l;
}

}  // namespace

TEST(FusedOptimizer, HostExecutorReproducesEveryOptimizerBitwise) {
  const Grad grad{kSeed};
  const std::uint64_t n = 2003;
  for (int K : {1, 2, 3, 5}) {
    for (const Case& c : cases()) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Layout layout = K == 3 ? three_tensors(n) : Layout::flat(n);
      const Outcome want = run(false, false, c.cfg, layout, K, 7, grad, 0.1);
      const Outcome got = run(true, false, c.cfg, layout, K, 7, grad, 0.1);
      expect_same(got, want, K, c.tol);
      if (HasFailure()) return;
    }
  }
}

TEST(FusedOptimizer, SameOnTheNcclEmulation) {
  // The fused path over NCCL's point-to-point rules (host memory): the same bits as the CPU
  // optimizers on the loopback backend.
  const Grad grad{kSeed};
  for (const char* spec : {"gmc/rbgs", "dgc-mfm/topk-sampled", "ef-sgdm/topk", "dmsgd/none"}) {
    const std::string s(spec);
    const auto slash = s.find('/');
    const OptimConfig cfg = make_cfg(s.substr(0, slash), s.substr(slash + 1), 0.05);
    for (int K : {2, 3}) {
      SCOPED_TRACE(s + " K " + std::to_string(K));
      const Outcome want = run(false, false, cfg, Layout::flat(1001), K, 5, grad, 0.1);
      const Outcome got = run(true, true, cfg, Layout::flat(1001), K, 5, grad, 0.1);
      expect_same(got, want, K, 0.0);
    }
  }
}

TEST(FusedOptimizer, NonFiniteGradientsFollowTheNanPolicy) {
  Grad grad{kSeed, 1, 2};  // rank 1, step 2
  auto cfg = make_cfg("gmc", "topk", 0.05);
  const Outcome want = run(false, false, cfg, Layout::flat(500), 3, 5, grad, 0.1);
  const Outcome got = run(true, false, cfg, Layout::flat(500), 3, 5, grad, 0.1);
  expect_same(got, want, 3, 0.0);
  EXPECT_EQ(got.skipped[0], 1u);
  EXPECT_EQ(got.stats[0][2].bad_ranks, std::vector<int>{1});
  cfg.nan_policy = sparcol::optim::NanPolicy::kStop;
  try {
    (void)run(true, false, cfg, Layout::flat(500), 3, 5, grad, 0.1);
    ADD_FAILURE() << "expected Error(kNumerical)";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kNumerical) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite gradient (NaN or Inf) at step 2 on rank(s) 1"),
              std::string::npos)
        << e.what();
  }
}

TEST(FusedOptimizer, UnsupportedConfigurationsAreArgumentErrors) {
  // `reason`: whether fused_unsupported_reason names it too (ranges are make_optimizer's checks).
  auto expect_reason = [](const OptimConfig& cfg, const Layout& layout, const std::string& text,
                          bool reason = true) {
    if (reason) {
      EXPECT_NE(sparcol::optim::fused_unsupported_reason(layout, cfg).find(text), std::string::npos)
          << sparcol::optim::fused_unsupported_reason(layout, cfg);
    }
    sparcol::comm::LoopbackWorld::spawn(1, [&](Backend& b) {
      sparcol::device::Exec ex = sparcol::device::Exec::host();
      try {
        FusedOptimizer opt(b, layout, cfg, ex);
        ADD_FAILURE() << "accepted: " << text;
      } catch (const sparcol::Error& e) {
        EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument) << e.what();
        EXPECT_NE(std::string(e.what()).find(text), std::string::npos) << e.what();
      }
    });
  };
  expect_reason(make_cfg("gmc", "sign", 1.0), Layout::flat(10),
                "compressor 'sign' is not available on the fused path");
  expect_reason(make_cfg("dgc", "randk", 0.1), Layout::flat(10), "compressor 'randk'");
  auto lw = make_cfg("gmc", "topk", 0.1);
  lw.exchange.layerwise = true;
  expect_reason(lw, Layout::flat(10), "layer-wise compression");
  auto small = make_cfg("gmc", "topk", 0.1);
  small.exchange.min_compress_size = 100;
  expect_reason(small, three_tensors(300), "tensor 'b1' would be all-reduced densely");
  auto cser = make_cfg("cser", "topk", 0.1);
  cser.cser_c2 = {"sidco", 0.1};
  expect_reason(cser, Layout::flat(10), "CSER's C2 compressor 'sidco'");
  auto bad = make_cfg("gmc", "topk", 0.1);
  bad.momentum = 1.5;
  expect_reason(bad, Layout::flat(10), "momentum must be in [0, 1)", false);
  // Supported: dense methods ignore the compressor; exclusions that exclude nothing.
  EXPECT_EQ(sparcol::optim::fused_unsupported_reason(Layout::flat(10), make_cfg("dmsgd", "sign", 1.0)), "");
  auto none_excluded = make_cfg("gmc", "topk", 0.1);
  none_excluded.exchange.min_compress_size = 10;
  none_excluded.exchange.compress_only_matrices = true;
  EXPECT_EQ(sparcol::optim::fused_unsupported_reason(Layout::flat(10, 2), none_excluded), "");
}

TEST(FusedOptimizer, ArgumentChecks) {
  sparcol::comm::LoopbackWorld::spawn(1, [&](Backend& b) {
    sparcol::device::Exec ex = sparcol::device::Exec::host();
    FusedOptimizer opt(b, Layout::flat(10), make_cfg("gmc", "topk", 0.1), ex);
    EXPECT_EQ(opt.size(), 10u);
    EXPECT_EQ(opt.mem_kind(), sparcol::MemKind::kHost);
    Vec x(10), g(9);
    try {
      opt.step(x, g, 0, 0.1);
      ADD_FAILURE() << "accepted 9 gradient entries";
    } catch (const sparcol::Error& e) {
      EXPECT_NE(std::string(e.what()).find("step with 10 parameters and 9 gradient entries"),
                std::string::npos);
    }
    Vec g10(10);
    try {
      opt.step(x, g10, 0, -1.0);
      ADD_FAILURE() << "accepted a negative learning rate";
    } catch (const sparcol::Error& e) {
      EXPECT_NE(std::string(e.what()).find("learning rate must be finite and >= 0"), std::string::npos);
    }
  });
}

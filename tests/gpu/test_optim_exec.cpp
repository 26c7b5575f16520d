// The optimizers on their executors (device/dispatch.hpp): one implementation of every method, run
//   * on the host executor with the sparse aggregates' support tracked (the default) and without
//     (ExchangeConfig::track_support = false, every pass dense): the same bits;
//   * on the NCCL point-to-point emulation (host memory): the same bits as on the loopback backend;
//   * on a device executor when a GPU is present: the same bits as on the host (DGC's clipping while
//     active within a tolerance: its norm is summed in another order, documented in dispatch.hpp).
// Compared: model, evaluation model, state, skipped steps and communication statistics, for every
// method and compressor (the host-only compressors and groups on the host only), on 1, 2, 3 and 5
// ranks. What a device executor cannot run is named by unsupported_reason.
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
#include "gpu_skip.hpp"
#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::comm::Backend;
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

enum class Mode { kHost, kHostDense, kEmulatedNccl, kDevice };

// Runs `steps` steps on every rank of a world (loopback, or the NCCL emulation) with the optimizer on
// the mode's executor; vectors travel to and from device memory around each call in kDevice.
Outcome run(Mode mode, OptimConfig cfg, const Layout& layout, int K, int steps, const Grad& grad, double lr) {
  Outcome out;
  const auto k = static_cast<std::size_t>(K);
  out.x.resize(k);
  out.eval.resize(k);
  out.state.resize(k);
  out.stats.resize(k);
  out.skipped.resize(k);
  const std::uint64_t n = layout.total();
  if (mode == Mode::kHostDense) cfg.exchange.track_support = false;
  auto body = [&](Backend& b) {
    const auto r = static_cast<std::size_t>(b.rank());
    sparcol::device::Exec ex =
        mode == Mode::kDevice ? sparcol::device::Exec::device() : sparcol::device::Exec::host();
    auto opt = sparcol::optim::make_optimizer(b, layout, cfg, ex);
    sparcol::device::Buffer<float> d_x(ex, n, "x"), d_g(ex, n, "g"), d_eval(ex, n, "eval");
    Vec x = initial_x(n);
    ex.upload(d_x.data(), x.data(), n * sizeof(float));
    auto download = [&](const float* p, std::uint64_t count) {
      Vec h(count);
      ex.download(h.data(), p, count * sizeof(float));
      return h;
    };
    for (int t = 0; t < steps; ++t) {
      const double lr_t = lr * (1.0 + 0.1 * t);
      const auto zs = opt->gradient_point(d_x.span(), lr_t);
      const Vec g = grad(b.rank(), static_cast<std::uint64_t>(t), download(zs.data(), zs.size()));
      ex.upload(d_g.data(), g.data(), n * sizeof(float));
      out.stats[r].push_back(opt->step(d_x.span(), d_g.span(), static_cast<std::uint64_t>(t), lr_t, 0.5 * t));
    }
    opt->evaluation_model(d_x.span(), d_eval.span(), true);
    for (auto& s : opt->state()) out.state[r][s.name] = download(s.data.data(), s.data.size());
    out.skipped[r] = opt->skipped_steps();
    out.x[r] = download(d_x.data(), n);
    out.eval[r] = download(d_eval.data(), n);
  };
  if (mode == Mode::kEmulatedNccl) {
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
             << what << " element " << i << ": got " << got[i] << ", want " << want[i];
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
  auto dmo = make_cfg("dmsgd", "none", 1.0);
  dmo.weight_decay = 0.01;
  dmo.wd_outside = true;
  cs.push_back({"dmsgd/wd-outside", dmo});
  auto efo = make_cfg("ef-sgdm", "topk", 0.05);
  efo.weight_decay = 0.01;
  efo.wd_outside = true;
  cs.push_back({"ef-sgdm/topk/wd-outside", efo});
  return cs;
}

// Configurations only the host executor runs: the host compressors, layer-wise groups, tensors
// excluded from compression (they exercise the Exchange's group code and the untracked aggregates).
std::vector<Case> host_cases() {
  std::vector<Case> cs;
  for (const char* comp : {"sign", "randk", "randk-shared", "sidco"}) {
    for (const char* m : {"gmc", "dgc-mfm", "ef-sgdm", "def-a"})
      cs.push_back({std::string(m) + "/" + comp, make_cfg(m, comp, 0.05)});
  }
  for (const char* comp : {"topk", "rbgs", "topk-sampled", "sign"}) {
    auto lw = make_cfg("gmc-plus", comp, 0.05);
    lw.exchange.layerwise = true;
    cs.push_back({std::string("gmc-plus/") + comp + "/layerwise", lw});
    auto ex = make_cfg("dgc-mfm", comp, 0.05);
    ex.exchange.compress_only_matrices = true;  // b1 all-reduced densely, w1 and w2 one group
    cs.push_back({std::string("dgc-mfm/") + comp + "/matrices-only", ex});
  }
  auto c = make_cfg("cser", "topk", 0.05);
  c.cser_c1 = {"randk", 0.05};
  c.cser_c2 = {"sidco", 0.2};
  c.cser_period = 2;
  cs.push_back({"cser/randk/sidco", c});
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

bool have_gpu() {
  return sparcol::device::has_gpu();
}

TEST(OptimizerExecutors, SparseAggregatesGiveTheDenseUpdateBitwise) {
  // The tracked support (GMC's sparse momentum pass, the sparse model update) against every pass
  // dense, on every configuration the host runs.
  const Grad grad{kSeed};
  const std::uint64_t n = 2003;
  auto all = cases();
  for (auto& c : host_cases()) all.push_back(c);
  for (int K : {1, 2, 3, 5}) {
    for (const Case& c : all) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Layout layout = K == 3 || c.label.find("layerwise") != std::string::npos ||
                                    c.label.find("matrices") != std::string::npos
                                ? three_tensors(n)
                                : Layout::flat(n);
      const Outcome want = run(Mode::kHostDense, c.cfg, layout, K, 7, grad, 0.1);
      const Outcome got = run(Mode::kHost, c.cfg, layout, K, 7, grad, 0.1);
      expect_same(got, want, K, 0.0);
      if (HasFailure()) return;
    }
  }
}

TEST(OptimizerExecutors, FusedMessagePassGivesTheSeparatePassesBitwise) {
  // GMC's one-pass message on the host (NaN check, message, m from the sorted support, the fused
  // top-k) against the separate dense passes, at a size where the fused top-k takes its sampled
  // bound (n >= 2^18), on several rank counts (the merged sparse sum), with coupled weight decay
  // (the non-plain gradient), and with a NaN on one rank (the skipped step drops the message).
  const std::uint64_t n = (std::uint64_t{1} << 18) + 77;
  std::vector<Case> cs;
  for (const char* m : {"gmc", "gmc-plus"})
    for (const char* comp : {"topk", "rbgs", "topk-sampled"})
      cs.push_back({std::string(m) + "/" + comp, make_cfg(m, comp, 0.01)});
  auto wd = make_cfg("gmc", "topk", 0.01);
  wd.weight_decay = 0.01;
  cs.push_back({"gmc/topk/wd", wd});
  for (int K : {1, 3}) {
    for (const Case& c : cs) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Grad grad{kSeed + static_cast<std::uint64_t>(K)};
      const Outcome want = run(Mode::kHostDense, c.cfg, Layout::flat(n), K, 4, grad, 0.1);
      const Outcome got = run(Mode::kHost, c.cfg, Layout::flat(n), K, 4, grad, 0.1);
      expect_same(got, want, K, 0.0);
      if (HasFailure()) return;
    }
  }
  {
    // More ranks than the merged sum takes: the support comes in first-written order and GMC falls
    // back to the separate passes.
    SCOPED_TRACE("K 17");
    const auto cfg = make_cfg("gmc", "topk", 0.01);
    const Grad grad{kSeed};
    static_assert(sparcol::optim::Exchange::kMaxMergeRanks < 17);
    expect_same(run(Mode::kHost, cfg, Layout::flat(3001), 17, 3, grad, 0.1),
                run(Mode::kHostDense, cfg, Layout::flat(3001), 17, 3, grad, 0.1), 17, 0.0);
  }
  const Grad bad{kSeed, 1, 2};  // rank 1, step 2
  const auto cfg = make_cfg("gmc", "topk", 0.01);
  const Outcome want = run(Mode::kHostDense, cfg, Layout::flat(n), 3, 5, bad, 0.1);
  const Outcome got = run(Mode::kHost, cfg, Layout::flat(n), 3, 5, bad, 0.1);
  expect_same(got, want, 3, 0.0);
  EXPECT_EQ(got.skipped[0], 1u);
}

TEST(OptimizerExecutors, SameOnTheNcclEmulation) {
  // Over NCCL's point-to-point rules (host memory): the same bits as on the loopback backend.
  const Grad grad{kSeed};
  for (const char* spec : {"gmc/rbgs", "dgc-mfm/topk-sampled", "ef-sgdm/topk", "dmsgd/none"}) {
    const std::string s(spec);
    const auto slash = s.find('/');
    const OptimConfig cfg = make_cfg(s.substr(0, slash), s.substr(slash + 1), 0.05);
    for (int K : {2, 3}) {
      SCOPED_TRACE(s + " K " + std::to_string(K));
      const Outcome want = run(Mode::kHost, cfg, Layout::flat(1001), K, 5, grad, 0.1);
      const Outcome got = run(Mode::kEmulatedNccl, cfg, Layout::flat(1001), K, 5, grad, 0.1);
      expect_same(got, want, K, 0.0);
    }
  }
}

TEST(OptimizerExecutors, DeviceExecutorReproducesTheHostBitwise) {
  SPARCOL_SKIP_WITHOUT_GPU();
  const Grad grad{kSeed};
  const std::uint64_t n = 2003;
  for (int K : {1, 2, 3}) {
    for (const Case& c : cases()) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Layout layout = K == 3 ? three_tensors(n) : Layout::flat(n);
      const Outcome want = run(Mode::kHost, c.cfg, layout, K, 7, grad, 0.1);
      const Outcome got = run(Mode::kDevice, c.cfg, layout, K, 7, grad, 0.1);
      expect_same(got, want, K, c.tol);
      if (HasFailure()) return;
    }
  }
}

TEST(OptimizerExecutors, PowerSgdOnTheDeviceReproducesTheHostBitwise) {
  // powersgd's products, Gram-Schmidt and updates (lowrank.cu) against their CPU twins through the
  // whole optimizer: matrices of several shapes (r' = min(r, n, m) cut by the small one), a vector,
  // both error forms, the ablations and weight decay, 1 to 3 ranks.
  SPARCOL_SKIP_WITHOUT_GPU();
  Layout layout;
  layout.tensors = {{"w1", 0, 15, 2}, {"b1", 15, 4, 1}, {"w2", 19, 64 * 40, 4}, {"w3", 19 + 2560, 7 * 33, 2}};
  layout.rows = {5, 0, 64, 7};
  std::vector<Case> cs;
  for (int r : {1, 2, 4}) {
    auto c = make_cfg("powersgd", "none", 1.0);
    c.low_rank = r;
    cs.push_back({"powersgd r " + std::to_string(r), c});
  }
  auto lib = make_cfg("powersgd", "none", 1.0);
  lib.low_rank = 2;
  lib.powersgd_error_form_paper = false;
  lib.weight_decay = 0.01;
  cs.push_back({"powersgd library form, wd", lib});
  auto abl = make_cfg("powersgd", "none", 1.0);
  abl.low_rank = 3;
  abl.powersgd_error_feedback = false;
  abl.powersgd_warm_start = false;
  cs.push_back({"powersgd no EF, no warm start", abl});
  const Grad grad{kSeed};
  for (int K : {1, 2, 3}) {
    for (const Case& c : cs) {
      SCOPED_TRACE(c.label + " K " + std::to_string(K));
      const Outcome want = run(Mode::kHost, c.cfg, layout, K, 6, grad, 0.1);
      const Outcome got = run(Mode::kDevice, c.cfg, layout, K, 6, grad, 0.1);
      expect_same(got, want, K, 0.0);
      if (HasFailure()) return;
    }
  }
}

TEST(OptimizerExecutors, NonFiniteGradientsFollowTheNanPolicy) {
  Grad grad{kSeed, 1, 2};  // rank 1, step 2
  auto cfg = make_cfg("gmc", "topk", 0.05);
  const Outcome want = run(Mode::kHostDense, cfg, Layout::flat(500), 3, 5, grad, 0.1);
  const Outcome got = run(Mode::kHost, cfg, Layout::flat(500), 3, 5, grad, 0.1);
  expect_same(got, want, 3, 0.0);
  EXPECT_EQ(got.skipped[0], 1u);
  EXPECT_EQ(got.stats[0][2].bad_ranks, std::vector<int>{1});
  cfg.nan_policy = sparcol::optim::NanPolicy::kStop;
  try {
    (void)run(Mode::kHost, cfg, Layout::flat(500), 3, 5, grad, 0.1);
    ADD_FAILURE() << "expected Error(kNumerical)";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), sparcol::ErrorCode::kNumerical) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite gradient (NaN or Inf) at step 2 on rank(s) 1"),
              std::string::npos)
        << e.what();
  }
}

TEST(OptimizerExecutors, WhatADeviceCannotRunIsNamed) {
  using sparcol::MemKind;
  using sparcol::optim::unsupported_reason;
  auto expect_reason = [](const OptimConfig& cfg, const Layout& layout, const std::string& text) {
    const std::string why = unsupported_reason(layout, cfg, MemKind::kDevice);
    EXPECT_NE(why.find(text), std::string::npos) << why;
    EXPECT_EQ(unsupported_reason(layout, cfg, MemKind::kHost), "");  // the host runs everything
    // The host executor builds it.
    sparcol::comm::LoopbackWorld::spawn(
        1, [&](Backend& b) { (void)sparcol::optim::make_optimizer(b, layout, cfg); });
  };
  expect_reason(make_cfg("gmc", "sign", 1.0), Layout::flat(10), "compressor 'sign' has no GPU kernel");
  expect_reason(make_cfg("dgc", "randk", 0.1), Layout::flat(10), "compressor 'randk'");
  auto lw = make_cfg("gmc", "topk", 0.1);
  lw.exchange.layerwise = true;
  expect_reason(lw, Layout::flat(10), "layer-wise compression");
  auto small = make_cfg("gmc", "topk", 0.1);
  small.exchange.min_compress_size = 100;
  expect_reason(small, three_tensors(300), "tensor 'b1' would be all-reduced densely");
  auto cser = make_cfg("cser", "topk", 0.1);
  cser.cser_c2 = {"sidco", 0.1};
  expect_reason(cser, Layout::flat(10), "CSER's C2: compressor 'sidco'");
  // Supported: dense methods ignore the compressor; exclusions that exclude nothing.
  EXPECT_EQ(unsupported_reason(Layout::flat(10), make_cfg("dmsgd", "sign", 1.0), MemKind::kDevice), "");
  auto none_excluded = make_cfg("gmc", "topk", 0.1);
  none_excluded.exchange.min_compress_size = 10;
  none_excluded.exchange.compress_only_matrices = true;
  EXPECT_EQ(unsupported_reason(Layout::flat(10, 2), none_excluded, MemKind::kDevice), "");
  if (!have_gpu()) {
    // Without a GPU there is no device executor to hand to make_optimizer at all.
    try {
      (void)sparcol::device::Exec::device();
      ADD_FAILURE() << "a device executor without a GPU";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), sparcol::ErrorCode::kCuda) << e.what();
    }
  }
}

TEST(OptimizerExecutors, WeightDecayOutsideIsDefinedOrRefused) {
  for (const auto& m : sparcol::optim::method_names()) {
    auto cfg = make_cfg(m, "topk", 0.1);
    cfg.weight_decay = 0.01;
    cfg.wd_outside = true;
    sparcol::comm::LoopbackWorld::spawn(1, [&](Backend& b) {
      if (sparcol::optim::method_has_wd_outside(m)) {
        (void)sparcol::optim::make_optimizer(b, Layout::flat(10), cfg);
        return;
      }
      try {
        (void)sparcol::optim::make_optimizer(b, Layout::flat(10), cfg);
        ADD_FAILURE() << m << " accepted wd_outside";
      } catch (const sparcol::Error& e) {
        EXPECT_EQ(e.code(), sparcol::ErrorCode::kInvalidArgument) << e.what();
        EXPECT_NE(std::string(e.what()).find(m + " does not define weight decay outside compression"),
                  std::string::npos)
            << e.what();
      }
    });
  }
  EXPECT_FALSE(sparcol::optim::method_has_wd_outside("gmc"));
  EXPECT_FALSE(sparcol::optim::method_has_wd_outside("gmc-plus"));
  EXPECT_FALSE(sparcol::optim::method_has_wd_outside("cser"));
  EXPECT_TRUE(sparcol::optim::method_has_wd_outside("dgc"));
  // Without weight decay the flag would do nothing: refused.
  auto none = make_cfg("dgc", "topk", 0.1);
  none.wd_outside = true;
  sparcol::comm::LoopbackWorld::spawn(1, [&](Backend& b) {
    EXPECT_THROW((void)sparcol::optim::make_optimizer(b, Layout::flat(10), none), sparcol::Error);
  });
}

TEST(OptimizerExecutors, WeightDecayOutsideChangesTheTrajectory) {
  // The defect this replaces: wd_outside silently turned weight decay off for all but dgc.
  const Grad grad{kSeed};
  for (const char* m : {"dmsgd", "dmsgd-local", "ef-sgd", "ef-sgdm", "dgc", "dgc-mfm", "def-a"}) {
    SCOPED_TRACE(m);
    auto with = make_cfg(m, "topk", 0.05);
    with.weight_decay = 0.1;
    with.wd_outside = true;
    const auto plain = make_cfg(m, "topk", 0.05);
    const Outcome a = run(Mode::kHost, with, Layout::flat(300), 2, 4, grad, 0.1);
    const Outcome b = run(Mode::kHost, plain, Layout::flat(300), 2, 4, grad, 0.1);
    EXPECT_NE(a.x[0], b.x[0]);
    EXPECT_EQ(a.x[0], a.x[1]);  // still replicated
  }
}

TEST(OptimizerExecutors, ArgumentChecks) {
  sparcol::comm::LoopbackWorld::spawn(1, [&](Backend& b) {
    auto opt = sparcol::optim::make_optimizer(b, Layout::flat(10), make_cfg("gmc", "topk", 0.1));
    EXPECT_EQ(opt->size(), 10u);
    EXPECT_EQ(opt->mem_kind(), sparcol::MemKind::kHost);
    Vec x(10), g(9);
    try {
      opt->step(x, g, 0, 0.1);
      ADD_FAILURE() << "accepted 9 gradient entries";
    } catch (const sparcol::Error& e) {
      EXPECT_NE(std::string(e.what()).find("step with 10 parameters and 9 gradient entries"),
                std::string::npos);
    }
    Vec g10(10);
    try {
      opt->step(x, g10, 0, -1.0);
      ADD_FAILURE() << "accepted a negative learning rate";
    } catch (const sparcol::Error& e) {
      EXPECT_NE(std::string(e.what()).find("learning rate must be finite and >= 0"), std::string::npos);
    }
  });
}

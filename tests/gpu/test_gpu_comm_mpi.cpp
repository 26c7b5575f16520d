// The collectives on device buffers under mpirun, against the host path (tests/gpu/devpath_checks):
//  * over MpiBackend with host memory through the executor path (every build, no GPU needed);
//  * over MpiBackend with device memory (staging through pinned host memory): needs a GPU; ranks of
//    one node may share it;
//  * over NcclBackend (make_backend("nccl")): needs NCCL and a GPU of its own for every rank of a
//    node (NCCL refuses two ranks on one device); skipped on every rank otherwise, saying why;
//  * without a GPU, make_backend("nccl") is a clear error on every rank, not a hang.
// A fresh seed per run is printed on failure; SPARCOL_TEST_SEED=<n> repeats a run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../common/coll_checks.hpp"
#include "../mpi/mpi_test.hpp"
#include "devpath_checks.hpp"
#include "gpu_skip.hpp"
#include "sparcol/comm/make_backend.hpp"
#include "sparcol/config.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/device/device.hpp"
#include "sparcol/device/dispatch.hpp"
#include "sparcol/optim/optimizer.hpp"

using sparcol::ErrorCode;
using sparcol::comm::Backend;
using sparcol::device::Exec;
using sparcol::test::DevCheck;
using sparcol::test::MpiTest;

namespace {

// Rank 0's seed, shared by every rank (inputs are a function of seed and rank).
std::uint64_t shared_seed() {
  static const std::uint64_t seed = [] {
    std::uint64_t s = sparcol::test::test_seed();
    sparcol::test::world().broadcast(&s, sizeof s, 0);
    return s;
  }();
  return seed;
}

std::string seed_note() {
  return " (seed " + std::to_string(shared_seed()) +
         "; rerun with SPARCOL_TEST_SEED=" + std::to_string(shared_seed()) + ")";
}

// Every check of devpath_checks on backend b with executor ex, over a few sizes; failures merged
// over ranks so that every rank reports them.
void run_all_checks(Backend& b, Exec& ex) {
  for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{1009}, std::size_t{65537}}) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::vector<std::pair<std::string, DevCheck>> results;
    for (int algo : {0, 1, 2, 3})
      results.emplace_back("ring algorithm " + std::to_string(algo),
                           sparcol::test::check_ring_exec(b, ex, n, algo, shared_seed()));
    for (std::size_t k : sparcol::test::rbgs_ks(n))
      for (bool wrap : {true, false})
        results.emplace_back("rbgs k " + std::to_string(k),
                             sparcol::test::check_rbgs_exec(b, ex, n, k, wrap, shared_seed()));
    for (std::size_t k : sparcol::test::sparse_ks(n))
      for (int algo : {0, 1, 2})
        results.emplace_back("sparse max_k " + std::to_string(k) + " algorithm " + std::to_string(algo),
                             sparcol::test::check_sparse_exec(b, ex, n, k, algo, shared_seed()));
    results.emplace_back("sign", sparcol::test::check_sign_exec(b, ex, n, shared_seed()));
    results.emplace_back("dense", sparcol::test::check_dense_exec(b, ex, n, shared_seed()));
    for (const auto& [what, res] : results) {
      EXPECT_EQ(res.wrong, 0u) << what << ": " << res.first << seed_note();
      EXPECT_EQ(sparcol::test::ranks_failed(b, res), 0) << what << seed_note();
    }
  }
}

// Whether every rank can use a GPU of its own (NCCL) or at all (staging); the same verdict on every
// rank, with the reason. `capacity`: every rank has a GPU, but a node has fewer than ranks (a
// capacity skip, tests/gpu/gpu_skip.hpp).
struct GpuVerdict {
  bool ok = true;
  bool capacity = false;
  std::string why;
};

GpuVerdict gpu_verdict(bool own_device) {
  auto& w = sparcol::test::world();
  const int count = sparcol::device::device_count();
  const int local = sparcol::comm::local_rank();
  std::string why;
  if (count == 0) {
    why = "no CUDA device: " + sparcol::device::no_gpu_reason();
  } else if (own_device && local >= count) {
    why = "NCCL needs a GPU per rank: local rank " + std::to_string(local) + " on a node with " +
          std::to_string(count) + " GPU(s)";
  }
  float bad[2] = {why.empty() ? 0.0f : 1.0f, count == 0 ? 1.0f : 0.0f};
  w.allreduce_sum(bad, 2);
  if (bad[0] == 0.0f) return {};
  return {false, bad[1] == 0.0f, why.empty() ? "another rank has no usable GPU" : why};
}

// Skips (or fails, under SPARCOL_REQUIRE_GPU=1) unless the verdict allows the device case.
#define SKIP_UNLESS_USABLE(verdict)                               \
  do {                                                            \
    const GpuVerdict v_ = (verdict);                              \
    if (!v_.ok && v_.capacity) SPARCOL_GPU_CAPACITY_SKIP(v_.why); \
    if (!v_.ok) SPARCOL_GPU_SKIP(v_.why);                         \
  } while (0)

// A gradient that depends on the point it is taken at, per (seed, rank, step).
std::vector<float> gradient(std::uint64_t seed, int rank, std::uint64_t t, const std::vector<float>& z) {
  sparcol::CounterRng rng(seed, sparcol::kStreamUser, static_cast<std::uint32_t>(rank * 1000 + t));
  std::vector<float> g(z.size());
  for (std::size_t i = 0; i < z.size(); ++i)
    g[i] = static_cast<float>(rng.normal()) * (i % 17 == 0 ? 10.0f : 1.0f) + 0.5f * z[i];
  return g;
}

// The optimizer on backend b with executor ex against the same optimizer on host memory over
// b.control() with every pass dense (track_support off), for a few methods and compressors: model
// and state bitwise when `exact`, else within a relative 1e-5 (NCCL's own all-reduce sums in another
// order for more than two ranks).
void check_optimizer(Backend& b, Exec& ex, bool exact) {
  using sparcol::optim::OptimConfig;
  const std::uint64_t n = 100003;
  const auto layout = sparcol::optim::Layout::flat(n);
  const int steps = 5;
  struct Spec {
    const char* method;
    const char* comp;
    double wd;
  };
  for (const Spec& sp :
       {Spec{"gmc-plus", "rbgs", 0.01}, Spec{"dgc-mfm", "topk-sampled", 0.0}, Spec{"ef-sgdm", "topk", 0.0},
        Spec{"def-a", "topk", 0.02}, Spec{"dmsgd", "none", 0.01}, Spec{"cser", "topk", 0.01}}) {
    SCOPED_TRACE(std::string(sp.method) + "/" + sp.comp);
    OptimConfig cfg;
    cfg.method = sp.method;
    cfg.exchange.compressor.name = sp.comp;
    cfg.exchange.compressor.density = 0.01;
    cfg.exchange.seed = 77;
    cfg.weight_decay = sp.wd;
    cfg.cser_c1 = {"topk", 0.01};
    cfg.cser_c2 = {"rbgs", 0.05};
    cfg.cser_period = 2;
    std::vector<float> x0(n);
    for (std::uint64_t i = 0; i < n; ++i) x0[i] = 0.01f * static_cast<float>(i % 13);
    // The CPU optimizer on the host backend.
    std::vector<float> want = x0;
    std::map<std::string, std::vector<float>> want_state;
    {
      OptimConfig dense = cfg;
      dense.exchange.track_support = false;
      auto opt = sparcol::optim::make_optimizer(b.control(), layout, dense);
      for (int t = 0; t < steps; ++t) {
        const auto z = opt->gradient_point(want, 0.1);
        const auto g = gradient(shared_seed(), b.rank(), static_cast<std::uint64_t>(t),
                                std::vector<float>(z.begin(), z.end()));
        opt->step(want, g, static_cast<std::uint64_t>(t), 0.1);
      }
      for (auto& st : opt->state()) want_state[st.name] = std::vector<float>(st.data.begin(), st.data.end());
    }
    // The optimizer on the executor's memory.
    sparcol::device::Buffer<float> x(ex, n, "x"), g(ex, n, "g");
    ex.upload(x.data(), x0.data(), n * sizeof(float));
    auto opt = sparcol::optim::make_optimizer(b, layout, cfg, ex);
    std::vector<float> host(n);
    for (int t = 0; t < steps; ++t) {
      const auto z = opt->gradient_point(x.span(), 0.1);
      ex.download(host.data(), z.data(), n * sizeof(float));
      const auto gh = gradient(shared_seed(), b.rank(), static_cast<std::uint64_t>(t), host);
      ex.upload(g.data(), gh.data(), n * sizeof(float));
      opt->step(x.span(), g.span(), static_cast<std::uint64_t>(t), 0.1);
    }
    auto compare = [&](const std::string& what, const float* d, const std::vector<float>& ref) {
      std::vector<float> got(ref.size());
      ex.download(got.data(), d, ref.size() * sizeof(float));
      std::size_t bad = 0, first = 0;
      for (std::size_t i = 0; i < ref.size(); ++i) {
        const bool ok = exact ? std::memcmp(&got[i], &ref[i], sizeof(float)) == 0
                              : std::abs(got[i] - ref[i]) <= 1e-5f * (1.0f + std::abs(ref[i]));
        if (!ok && bad++ == 0) first = i;
      }
      EXPECT_EQ(bad, 0u) << what << ": " << bad << " elements differ, first at " << first << ": executor "
                         << got[first] << ", host " << ref[first] << seed_note();
    };
    compare("x", x.data(), want);
    for (auto& st : opt->state()) compare(st.name, st.data.data(), want_state.at(st.name));
  }
}

class GpuCommMpi : public MpiTest {};

TEST_F(GpuCommMpi, OptimizerOnHostMemoryOverMpi) {
  Exec ex = Exec::host();
  check_optimizer(sparcol::test::world(), ex, true);
}

TEST_F(GpuCommMpi, OptimizerOnDeviceOverMpiStaging) {
  SKIP_UNLESS_USABLE(gpu_verdict(false));
  sparcol::device::set_device(sparcol::comm::local_rank() % sparcol::device::device_count());
  Exec ex = Exec::device();
  check_optimizer(sparcol::test::world(), ex, true);
}

TEST_F(GpuCommMpi, OptimizerOnDeviceOverNccl) {
  if (!SPARCOL_HAVE_NCCL) SPARCOL_GPU_SKIP("this build has no NCCL");
  SKIP_UNLESS_USABLE(gpu_verdict(true));
  auto b = sparcol::comm::make_backend("nccl");
  b->set_timeout(std::chrono::seconds(60));
  Exec ex = Exec::device(b->stream_handle());
  check_optimizer(*b, ex, b->size() <= 2);
}

TEST_F(GpuCommMpi, ExecutorPathOnHostMemoryOverMpi) {
  Exec ex = Exec::host();
  run_all_checks(sparcol::test::world(), ex);
}

TEST_F(GpuCommMpi, DeviceBuffersOverMpiStaging) {
  SKIP_UNLESS_USABLE(gpu_verdict(false));
  sparcol::device::set_device(sparcol::comm::local_rank() % sparcol::device::device_count());
  Exec ex = Exec::device();
  auto& w = sparcol::test::world();
  EXPECT_TRUE(w.accepts(sparcol::MemKind::kDevice));
  run_all_checks(w, ex);
}

TEST_F(GpuCommMpi, DeviceBuffersOverNccl) {
  if (!SPARCOL_HAVE_NCCL) SPARCOL_GPU_SKIP("this build has no NCCL");
  SKIP_UNLESS_USABLE(gpu_verdict(true));
  auto b = sparcol::comm::make_backend("nccl");
  b->set_timeout(std::chrono::seconds(60));
  EXPECT_EQ(b->name(), "nccl");
  EXPECT_EQ(b->mem_kind(), sparcol::MemKind::kDevice);
  EXPECT_FALSE(b->accepts(sparcol::MemKind::kHost));
  EXPECT_NE(&b->control(), b.get());
  EXPECT_NE(b->stream_handle(), nullptr);
  Exec ex = Exec::device(b->stream_handle());
  run_all_checks(*b, ex);
  // Host memory where NCCL needs device memory: an argument error naming the operation.
  std::vector<float> host(4);
  try {
    b->allreduce_sum(host.data(), host.size());
    ADD_FAILURE() << "a host pointer was accepted by the NCCL all-reduce";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    EXPECT_NE(std::string(e.what()).find("expected a device pointer"), std::string::npos) << e.what();
  }
  if (b->size() > 1) {
    try {
      auto r = b->isend(host.data(), 16, (b->rank() + 1) % b->size(), 1);
      ADD_FAILURE() << "a host pointer was accepted by the NCCL isend";
    } catch (const sparcol::Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      EXPECT_NE(std::string(e.what()).find("nccl isend"), std::string::npos) << e.what();
    }
  }
  b->barrier();
}

TEST_F(GpuCommMpi, NcclWithoutAUsableDeviceIsAClearErrorOnEveryRank) {
  SPARCOL_SKIP_WITH_GPU();
  try {
    auto b = sparcol::comm::make_backend("nccl");
    ADD_FAILURE() << "make_backend(\"nccl\") succeeded without a GPU";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    const std::string want = SPARCOL_HAVE_NCCL ? "does not exist" : "not compiled in";
    EXPECT_NE(std::string(e.what()).find(want), std::string::npos) << e.what();
  }
  // An explicit ordinal is checked the same way.
  sparcol::comm::BackendOptions opt;
  opt.device = 5;
  try {
    auto b = sparcol::comm::make_backend("nccl", opt);
    ADD_FAILURE() << "make_backend(\"nccl\") succeeded with device 5";
  } catch (const sparcol::Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
    if (SPARCOL_HAVE_NCCL) {
      EXPECT_NE(std::string(e.what()).find("device 5 does not exist"), std::string::npos) << e.what();
    }
  }
}

}  // namespace

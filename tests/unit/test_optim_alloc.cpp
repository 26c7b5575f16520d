// No allocation inside the step loop: every method with its usual compressors, on one rank of the
// loopback backend and on the host executor, allocates nothing in steps after the first ones (which
// size the buffers). The global operator new of this binary counts the allocations of the calling
// thread (the test's own bookkeeping runs outside the counted window).
#include <gtest/gtest.h>

#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "sparcol/comm/loopback.hpp"
#include "sparcol/optim/optimizer.hpp"

// GCC 12 pairs the std::free below with a `new` it has inlined elsewhere and reports a mismatch
// (-Wmismatched-new-delete), a known false positive for replaced global operators: this operator new
// allocates with malloc, so free is the matching release.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

namespace {
thread_local bool g_counting = false;
thread_local std::size_t g_allocations = 0;
}  // namespace

void* operator new(std::size_t bytes) {
  if (g_counting) ++g_allocations;
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace {

struct Case {
  const char* method;
  const char* compressor;
  bool layerwise = false;
};

TEST(OptimizerSteps, AllocateNothingInSteadyState) {
  const std::vector<Case> cases = {
      {"dmsgd", "none"},     {"dmsgd-local", "none"}, {"ef-sgd", "topk"},
      {"ef-sgdm", "topk"},   {"dgc", "topk-sampled"}, {"dgc-mfm", "topk"},
      {"gmc", "topk"},       {"gmc-plus", "rbgs"},    {"def-a", "rbgs"},
      {"def-a", "topk"},     {"cser", "topk"},        {"gmc", "sign"},
      {"gmc", "randk"},      {"gmc", "randk-shared"}, {"gmc-plus", "topk", true},
      {"gmc", "rbgs", true},
  };
  const std::uint64_t n = 10000;
  sparcol::optim::Layout layout;
  layout.tensors = {{"w1", 0, 6000, 2}, {"b1", 6000, 1000, 1}, {"w2", 7000, 3000, 2}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(c.method) + "/" + c.compressor + (c.layerwise ? "/layerwise" : ""));
    sparcol::optim::OptimConfig cfg;
    cfg.method = c.method;
    cfg.exchange.compressor.name = c.compressor;
    cfg.exchange.compressor.density = 0.01;
    cfg.exchange.layerwise = c.layerwise;
    cfg.exchange.seed = 5;
    cfg.weight_decay = 1e-4;
    cfg.cser_period = 2;
    std::size_t counted = 0;
    sparcol::comm::LoopbackWorld::spawn(1, [&](sparcol::comm::Backend& b) {
      auto opt = sparcol::optim::make_optimizer(b, layout, cfg);
      std::vector<float> x(n, 0.5f), g(n);
      for (std::uint64_t t = 0; t < 12; ++t) {
        for (std::uint64_t i = 0; i < n; ++i)
          g[i] = static_cast<float>((i * 7919 + t * 104729) % 1000) - 500.0f;
        const auto z = opt->gradient_point(x, 0.1);
        (void)z;
        g_allocations = 0;
        g_counting = t >= 4;  // steps 0-3 size the buffers
        opt->step(x, g, t, 0.1);
        g_counting = false;
        counted += g_allocations;
      }
    });
    EXPECT_EQ(counted, 0u) << "allocations in steps 4-11";
  }
}

}  // namespace

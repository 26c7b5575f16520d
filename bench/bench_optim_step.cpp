// One whole optimizer step (NaN check, compression, exchange, decompression, update) at d = 2^24 on
// one rank (LoopbackBackend of size 1), for the methods with their usual compressor at 1%, and one
// memcpy of the vector for scale: "multiple of one memcpy" = time(row) / time(BM_Memcpy); and two
// floors (BM_ReadPass, BM_MessagePass) that say what one pass costs on the machine at hand.
// The "/dense" rows turn the Exchange's support tracking off (every pass over d, as before the
// aggregates kept their support): the same bits, the cost of the dense passes.
// Usage: sparcol_bench_optim_step [--benchmark_filter=...] (docs/optimizers.md, "Cost of a step").
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include "sparcol/comm/loopback.hpp"
#include "sparcol/core/rng.hpp"
#include "sparcol/optim/optimizer.hpp"

namespace {

constexpr std::uint64_t kN = std::uint64_t{1} << 24;

std::vector<float> random_vector(std::uint64_t n, std::uint64_t seed) {
  sparcol::CounterRng rng(seed, sparcol::kStreamUser, 0);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

void BM_Memcpy(benchmark::State& state) {
  const auto v = random_vector(kN, 1);
  std::vector<float> a(kN);
  for (auto _ : state) {
    std::memcpy(a.data(), v.data(), 4 * kN);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * 4 * kN));
}

// The floors of a step's dense work on this machine, for scale: one read pass over the vector (a
// NaN check), and GMC's message pass alone (read u and g, write v: the pass a method cannot avoid).
void BM_ReadPass(benchmark::State& state) {
  const auto v = random_vector(kN, 1);
  for (auto _ : state) {
    std::uint32_t all = 0xffffffffu;  // the NaN check's reduction (an AND of exponent tests)
    for (std::uint64_t i = 0; i < kN; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, v.data() + i, sizeof bits);
      all &= (bits & 0x7f800000u) == 0x7f800000u ? 0u : 0xffffffffu;
    }
    benchmark::DoNotOptimize(all);
  }
}

void BM_MessagePass(benchmark::State& state) {
  const auto u = random_vector(kN, 1);
  const auto g = random_vector(kN, 2);
  std::vector<float> w(kN);
  for (auto _ : state) {
    for (std::uint64_t i = 0; i < kN; ++i) w[i] = u[i] + (g[i] + 0.9f * 0.0f);
    benchmark::DoNotOptimize(w.data());
    benchmark::ClobberMemory();
  }
}

void BM_Step(benchmark::State& state, const char* method, const char* compressor, bool track) {
  sparcol::optim::OptimConfig cfg;
  cfg.method = method;
  cfg.exchange.compressor.name = compressor;
  cfg.exchange.compressor.density = 0.01;
  cfg.exchange.seed = 7;
  cfg.exchange.track_support = track;
  cfg.cser_c1 = {"topk", 0.005};
  cfg.cser_c2 = {"topk", 0.02};
  const auto g = random_vector(kN, 2);
  auto x = random_vector(kN, 3);
  sparcol::comm::LoopbackWorld::spawn(1, [&](sparcol::comm::Backend& b) {
    auto opt = sparcol::optim::make_optimizer(b, sparcol::optim::Layout::flat(kN), cfg);
    std::uint64_t t = 0;
    for (int w = 0; w < 2; ++w) opt->step(x, g, t++, 0.01);  // warm up: buffers, page faults
    for (auto _ : state) {
      opt->step(x, g, t++, 0.01);
      benchmark::DoNotOptimize(x.data());
    }
  });
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * kN));
}

}  // namespace

BENCHMARK(BM_Memcpy)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadPass)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_MessagePass)->Unit(benchmark::kMillisecond)->UseRealTime();
#define SPARCOL_STEP(name, method, comp)                                                              \
  BENCHMARK_CAPTURE(BM_Step, name, method, comp, true)->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(BM_Step, name##_dense, method, comp, false)->Unit(benchmark::kMillisecond)->UseRealTime()
SPARCOL_STEP(gmc_topk, "gmc", "topk");
SPARCOL_STEP(gmc_plus_rbgs, "gmc-plus", "rbgs");
SPARCOL_STEP(dgc_topk, "dgc", "topk");
SPARCOL_STEP(def_a_topk, "def-a", "topk");
SPARCOL_STEP(cser_topk, "cser", "topk");

BENCHMARK_MAIN();

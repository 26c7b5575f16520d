// One whole optimizer step (NaN check, compression, exchange, decompression, update) at d = 2^24 on
// one rank (LoopbackBackend of size 1), for the methods with their usual compressor at 1%, and one
// memcpy of the vector for scale: "multiple of one memcpy" = time(row) / time(BM_Memcpy).
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
#define SPARCOL_STEP(name, method, comp)                                                              \
  BENCHMARK_CAPTURE(BM_Step, name, method, comp, true)->Unit(benchmark::kMillisecond)->UseRealTime(); \
  BENCHMARK_CAPTURE(BM_Step, name##_dense, method, comp, false)->Unit(benchmark::kMillisecond)->UseRealTime()
SPARCOL_STEP(gmc_topk, "gmc", "topk");
SPARCOL_STEP(gmc_plus_rbgs, "gmc-plus", "rbgs");
SPARCOL_STEP(dgc_topk, "dgc", "topk");
SPARCOL_STEP(def_a_topk, "def-a", "topk");
SPARCOL_STEP(cser_topk, "cser", "topk");

BENCHMARK_MAIN();

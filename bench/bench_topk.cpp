// Compressor speed on one core (Google Benchmark).
//
// Input: n normal(0, 1) floats (fixed seed), n = 2^20 and 2^24, density 1% and 0.1%. Every benchmark
// reports bytes processed = 4n per call (the input vector), so bytes_per_second of two rows compare
// like their times, and "multiple of one memcpy" = time(row) / time(BM_Memcpy) at the same n.
//
// The std::nth_element baseline runs on a copy of |v| (it reorders its input and needs magnitudes);
// the copy is made with the timer paused, because sparcol's top-k reads v in place and makes no copy.
// BM_NthElementWithCopy includes the copy, for reference. nth_element returns neither the indices
// in order nor the values, so the comparison flatters it.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <vector>

#include "sparcol/compress/compressor.hpp"
#include "sparcol/compress/topk.hpp"

namespace {

using namespace sparcol::compress;

const std::vector<float>& input(std::int64_t log2n) {
  static std::map<std::int64_t, std::vector<float>> cache;
  auto& v = cache[log2n];
  if (v.empty()) {
    v.resize(std::size_t{1} << log2n);
    std::mt19937_64 gen(12345);
    std::normal_distribution<float> normal;
    for (auto& x : v) x = normal(gen);
  }
  return v;
}

// Integer values 0..19 (every key ties with n/20 others): the sampled bound overflows and the
// histograms run to the last digit. The worst case for the radix select.
const std::vector<float>& ties_input(std::int64_t log2n) {
  static std::map<std::int64_t, std::vector<float>> cache;
  auto& v = cache[log2n];
  if (v.empty()) {
    v.resize(std::size_t{1} << log2n);
    std::mt19937_64 gen(777);
    std::uniform_int_distribution<int> small(0, 19);
    for (auto& x : v) x = static_cast<float>(small(gen));
  }
  return v;
}

// Arguments: log2(n), density in units of 1e-4 (100 = 1%, 10 = 0.1%).
double density_of(const benchmark::State& state) {
  return static_cast<double>(state.range(1)) * 1e-4;
}
std::uint64_t n_of(const benchmark::State& state) {
  return std::uint64_t{1} << state.range(0);
}

void set_bytes(benchmark::State& state) {
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(4 * n_of(state)));
}

void BM_Compress(benchmark::State& state, const char* name, bool ties) {
  const auto& v = ties ? ties_input(state.range(0)) : input(state.range(0));
  CompressorConfig cfg;
  cfg.name = name;
  cfg.density = density_of(state);
  auto c = make_compressor(cfg);
  Message m;
  Context ctx{42, 0, 0, 0, 0};
  c->compress(v, ctx, m);  // size the message and scratch outside the timing
  for (auto _ : state) {
    ++ctx.step;
    c->compress(v, ctx, m);
    benchmark::DoNotOptimize(m.values.data());
    benchmark::ClobberMemory();
  }
  state.counters["nnz"] = static_cast<double>(m.nnz());
  set_bytes(state);
}

void BM_TopkRadixOnly(benchmark::State& state) {
  const auto& v = input(state.range(0));
  const std::uint64_t k = k_round(density_of(state), v.size());
  TopkSelector sel;
  std::vector<sparcol::Index> idx;
  std::vector<float> val;
  sel.select(v, k, idx, val, TopkSelector::Strategy::kRadix);
  for (auto _ : state) {
    sel.select(v, k, idx, val, TopkSelector::Strategy::kRadix);
    benchmark::DoNotOptimize(idx.data());
    benchmark::ClobberMemory();
  }
  state.counters["passes"] = sel.last_radix_passes();
  set_bytes(state);
}

void nth_element_on(std::vector<float>& a, std::uint64_t k) {
  std::nth_element(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(k - 1), a.end(), std::greater<float>());
}

void BM_NthElement(benchmark::State& state) {
  const auto& v = input(state.range(0));
  const std::uint64_t k = k_round(density_of(state), v.size());
  std::vector<float> a(v.size());
  for (auto _ : state) {
    state.PauseTiming();
    std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::fabs(x); });
    state.ResumeTiming();
    nth_element_on(a, k);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void BM_NthElementWithCopy(benchmark::State& state) {
  const auto& v = input(state.range(0));
  const std::uint64_t k = k_round(density_of(state), v.size());
  std::vector<float> a(v.size());
  for (auto _ : state) {
    std::transform(v.begin(), v.end(), a.begin(), [](float x) { return std::fabs(x); });
    nth_element_on(a, k);
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void BM_Memcpy(benchmark::State& state) {
  const auto& v = input(state.range(0));
  std::vector<float> a(v.size());
  for (auto _ : state) {
    std::memcpy(a.data(), v.data(), 4 * v.size());
    benchmark::DoNotOptimize(a.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state);
}

void topk_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"log2n", "rho_1e-4"});
  for (const int log2n : {20, 24})
    for (const int rho : {100, 10}) b->Args({log2n, rho});
  b->Unit(benchmark::kMillisecond);
}

void large_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"log2n", "rho_1e-4"})->Args({24, 100})->Unit(benchmark::kMillisecond);
}

}  // namespace

BENCHMARK(BM_Memcpy)
    ->ArgNames({"log2n", "rho_1e-4"})
    ->Args({20, 0})
    ->Args({24, 0})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Compress, topk, "topk", false)->Apply(topk_args);
BENCHMARK(BM_NthElement)->Apply(topk_args);
BENCHMARK(BM_NthElementWithCopy)->Apply(large_args);
BENCHMARK(BM_TopkRadixOnly)->Apply(topk_args);
BENCHMARK_CAPTURE(BM_Compress, topk_ties, "topk", true)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, topk_sampled, "topk-sampled", false)->Apply(topk_args);
BENCHMARK_CAPTURE(BM_Compress, randk, "randk", false)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, randk_shared, "randk-shared", false)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, rbgs, "rbgs", false)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, sign, "sign", false)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, sidco, "sidco", false)->Apply(large_args);
BENCHMARK_CAPTURE(BM_Compress, none, "none", false)->Apply(large_args);

BENCHMARK_MAIN();

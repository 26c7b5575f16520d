// Dense sum of gathered sparse pairs, in rank order, without float atomics.
//
// Input: the (index, value) pairs of all K ranks concatenated in rank order (as SparseAllgather
// holds them). Output: out[i] = (0 + every value with index i, in input order) / divisor, 0 where no
// pair points. This is bitwise what SparseAllgather::sum_into and the Exchange's division by K give.
// Steps:
//   1. stable radix sort of the pairs by index (CUB DeviceRadixSort::SortPairs, an LSD sort, so pairs
//      with equal indices keep their input order: rank order, then the order within the rank); all
//      32 bits, so that an out-of-range index cannot interleave with a valid run;
//   2. out <- 0 (cudaMemsetAsync);
//   3. one thread per run of equal indices (the thread whose pair starts the run) adds the run's
//      values in order, starting from +0, divides once and writes the element.
// Duplicates within one rank (a compressor never sends them, but a caller might) and across ranks
// are handled alike: summed in input order. A long run is summed by one thread (the price of the
// fixed order; runs are at most K long for compressor messages). Pairs with index >= n are skipped.
// Bytes: sort ~ 8 * pairs * (passes + 1); the run pass reads 8 per pair and writes 4 per run; the
// fill writes 4n.
#include <cub/device/device_radix_sort.cuh>

#include <cmath>

#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

namespace {

__global__ void sum_runs_kernel(const Index* d_idx, const float* d_val, std::uint64_t pairs, std::uint64_t n,
                                float divisor, float* d_out) {
  const std::uint64_t step = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t p = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; p < pairs;
       p += step) {
    const Index i = d_idx[p];
    if (i >= n || (p > 0 && d_idx[p - 1] == i)) continue;  // not the start of a run
    float acc = 0.0f;
    for (std::uint64_t q = p; q < pairs && d_idx[q] == i; ++q) acc = fadd(acc, d_val[q]);
    d_out[i] = fdiv(acc, divisor);
  }
}

struct SparseSumScratch {
  Index* keys = nullptr;
  float* values = nullptr;
  void* sort_temp = nullptr;
  std::size_t sort_bytes = 0;
  std::size_t total = 0;
};

SparseSumScratch carve(void* base, std::uint64_t pairs) {
  SparseSumScratch s;
  SPARCOL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(
      nullptr, s.sort_bytes, static_cast<const Index*>(nullptr), static_cast<Index*>(nullptr),
      static_cast<const float*>(nullptr), static_cast<float*>(nullptr), pairs));
  detail::ScratchCarver c(base);
  s.keys = c.take<Index>(pairs);
  s.values = c.take<float>(pairs);
  s.sort_temp = c.take_bytes(s.sort_bytes);
  s.total = c.size();
  return s;
}

}  // namespace

std::size_t sparse_sum_scratch_bytes(std::uint64_t pairs, std::uint64_t n) {
  if (pairs == 0 || n == 0) return 0;
  detail::require_gpu("sparse_sum_scratch_bytes");
  return carve(nullptr, pairs).total;
}

void sparse_sum(const Stream& s, const Index* d_idx, const float* d_val, std::uint64_t pairs, std::uint64_t n,
                float divisor, float* d_out, void* d_scratch, std::size_t scratch_bytes) {
  SPARCOL_CHECK_ARG(
      n <= kMaxElements, -1,
      "sparse_sum: vectors longer than 2^32-1 elements are not supported (n = " + std::to_string(n) + ")");
  SPARCOL_CHECK_ARG(divisor > 0.0f && std::isfinite(divisor), -1,
                    "sparse_sum: the divisor must be finite and > 0, got " + std::to_string(divisor));
  if (n == 0) return;
  detail::dev(d_out, "sparse_sum: out");
  const cudaStream_t cs = detail::cuda_stream(s);
  detail::memset_async(s, d_out, 0, n * sizeof(float));
  if (pairs == 0) return;
  detail::dev(d_idx, "sparse_sum: indices");
  detail::dev(d_val, "sparse_sum: values");
  detail::check_scratch(d_scratch, scratch_bytes, sparse_sum_scratch_bytes(pairs, n), "sparse_sum");
  SparseSumScratch sc = carve(d_scratch, pairs);
  SPARCOL_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sc.sort_temp, sc.sort_bytes, d_idx, sc.keys, d_val,
                                                     sc.values, pairs, 0, 32, cs));
  const unsigned grid =
      detail::grid_for(sum_runs_kernel, detail::kBlockThreads, pairs, detail::kBlockThreads);
  sum_runs_kernel<<<grid, detail::kBlockThreads, 0, cs>>>(sc.keys, sc.values, pairs, n, divisor, d_out);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

}  // namespace sparcol::device

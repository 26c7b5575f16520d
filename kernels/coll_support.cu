// Kernels of the collectives' and fused optimizers' device path (coll_support.hpp): the ring
// all-reduce's reduction step, the sparse all-gather's index check, and the count of non-zeros of an
// aggregate. The first two are elementwise (launch.cuh), their per-element code shared with the
// CPU twins (coll_support_ops.hpp); the count is a grid-stride reduction (an integer count: any
// order gives the same result).
//   add_into          dst, src read; dst written            12 bytes per element
//   first_bad_index   idx read; one atomic per bad index     4 bytes per element
//   count_nonzero     v read; one atomic per warp            4 bytes per element
#include "coll_support_ops.hpp"
#include "launch.cuh"
#include "sparcol/device/coll_support.hpp"

namespace sparcol::device {

void add_into(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n) {
  if (n == 0) return;
  detail::dev(d_dst, "add_into: dst");
  detail::dev(d_src, "add_into: src");
  detail::launch_elementwise(s, n, detail::AddIntoOp{d_dst, d_src});
}

void first_bad_index(const Stream& s, const Index* d_idx, std::uint64_t count, std::uint64_t n,
                     std::uint64_t* d_first) {
  detail::dev(d_first, "first_bad_index: first");
  if (count == 0) return;
  detail::dev(d_idx, "first_bad_index: idx");
  detail::launch_elementwise(s, count, detail::FirstBadIndexOp{d_idx, n, d_first});
}

namespace {

__global__ void __launch_bounds__(detail::kBlockThreads)
    count_nonzero_kernel(const float* v, std::uint64_t n, unsigned long long* count) {
  unsigned long long c = 0;
  const std::uint64_t step = static_cast<std::uint64_t>(gridDim.x) * blockDim.x;
  for (std::uint64_t i = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += step)
    c += v[i] != 0.0f ? 1ull : 0ull;
  // Every lane reaches the shuffles (the loop has ended for all of them; blocks are whole warps).
  for (int offset = 16; offset > 0; offset /= 2) c += __shfl_down_sync(0xffffffffu, c, offset);
  if ((threadIdx.x & 31u) == 0 && c != 0) atomicAdd(count, c);
}

}  // namespace

void count_nonzero(const Stream& s, const float* d_v, std::uint64_t n, std::uint64_t* d_count) {
  detail::dev(d_count, "count_nonzero: count");
  detail::memset_async(s, d_count, 0, sizeof(std::uint64_t));
  if (n == 0) return;
  detail::dev(d_v, "count_nonzero: v");
  const unsigned grid = detail::grid_for(count_nonzero_kernel, detail::kBlockThreads, n,
                                         static_cast<std::uint64_t>(detail::kBlockThreads) * detail::kUnroll);
  count_nonzero_kernel<<<grid, detail::kBlockThreads, 0, detail::cuda_stream(s)>>>(
      d_v, n, reinterpret_cast<unsigned long long*>(d_count));
  SPARCOL_CUDA_CHECK_LAUNCH();
}

}  // namespace sparcol::device

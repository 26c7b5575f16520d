// Launch helpers shared by the kernel files: grid sizing, the generic elementwise kernel and the
// argument checks every launcher does before it launches anything.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "cuda_check.hpp"
#include "element_ops.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/device/device.hpp"

namespace sparcol::device::detail {

inline constexpr int kBlockThreads = 256;
// Elements each thread loads before it stores any (memory-level parallelism for streaming kernels).
inline constexpr int kUnroll = 4;

// Blocks for a grid-stride kernel over `work` items, `per_block` items per block and iteration: as
// many as can be resident at once on the current device (occupancy of this kernel at `threads` per
// block, times the SMs), never more than the work needs. A resident grid does every iteration in one
// wave; a larger one would leave a partial second wave at the end.
template <class Kernel>
unsigned grid_for(Kernel kernel, int threads, std::uint64_t work, std::uint64_t per_block) {
  int dev = 0, sms = 1, per_sm = 0;
  SPARCOL_CUDA_CHECK(cudaGetDevice(&dev));
  SPARCOL_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  SPARCOL_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  const std::uint64_t needed = (work + per_block - 1) / per_block;
  const std::uint64_t full =
      static_cast<std::uint64_t>(sms) * static_cast<std::uint64_t>(per_sm > 0 ? per_sm : 1);
  const std::uint64_t g = needed < full ? needed : full;
  return static_cast<unsigned>(g > 0 ? g : 1);
}

// Runs op on items 0..count-1 (see element_ops.hpp: load then store). Grid-stride, 64-bit indices:
// every thread handles items base + u * blockDim.x for u < kUnroll, then moves on by the whole grid.
template <class Op>
__global__ void __launch_bounds__(kBlockThreads) elementwise_kernel(std::uint64_t count, Op op) {
  const std::uint64_t step = static_cast<std::uint64_t>(gridDim.x) * blockDim.x * kUnroll;
  for (std::uint64_t base = static_cast<std::uint64_t>(blockIdx.x) * blockDim.x * kUnroll + threadIdx.x;
       base < count; base += step) {
    typename Op::In in[kUnroll] = {};
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t i = base + static_cast<std::uint64_t>(u) * blockDim.x;
      if (i < count) in[u] = op.load(i);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const std::uint64_t i = base + static_cast<std::uint64_t>(u) * blockDim.x;
      if (i < count) op.store(i, in[u]);
    }
  }
}

template <class Op>
void launch_elementwise(const Stream& s, std::uint64_t count, const Op& op) {
  if (count == 0) return;
  const unsigned grid = grid_for(elementwise_kernel<Op>, kBlockThreads, count,
                                 static_cast<std::uint64_t>(kBlockThreads) * kUnroll);
  elementwise_kernel<Op><<<grid, kBlockThreads, 0, cuda_stream(s)>>>(count, op);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

// ---- argument checks (before any launch) ----
// For queries that ask CUB (which needs a device) before any pointer is seen.
inline void require_gpu(const char* who) {
  SPARCOL_CHECK(has_gpu(), ErrorCode::kCuda, -1,
                std::string(who) + ": no CUDA device (" + no_gpu_reason() + ")");
}

inline void dev(const void* p, const std::string& what) {
  require_device_pointer(p, what.c_str());
}

inline void check_block(const Block& b, std::uint64_t n, const char* who) {
  SPARCOL_CHECK_ARG(b.length == 0 || (b.n == n && b.length <= n && b.start < n), -1,
                    std::string(who) + ": block (n " + std::to_string(b.n) + ", start " +
                        std::to_string(b.start) + ", length " + std::to_string(b.length) +
                        ") does not fit a vector of " + std::to_string(n));
}

inline void check_gradient(const GradientInput& g, std::uint64_t n, const char* who) {
  if (n == 0) return;
  dev(g.g, std::string(who) + ": gradient");
  if (g.wd != 0.0f) dev(g.z, std::string(who) + ": gradient point (weight decay)");
}

inline void check_send(const Block& b, std::uint64_t n, const float* send, const char* who) {
  check_block(b, n, who);
  if (b.length != 0) dev(send, std::string(who) + ": send");
}

inline void check_scratch(const void* d_scratch, std::size_t have, std::size_t need, const char* who) {
  SPARCOL_CHECK_ARG(have >= need, -1,
                    std::string(who) + ": scratch of " + std::to_string(have) + " bytes, needs " +
                        std::to_string(need) + " (use the matching *_scratch_bytes query)");
  if (need > 0) dev(d_scratch, std::string(who) + ": scratch");
}

// Carves aligned pieces out of one scratch allocation; the same sequence of take() calls sizes it
// (with base == nullptr) and then hands out the pointers.
class ScratchCarver {
 public:
  explicit ScratchCarver(void* base) : base_(static_cast<char*>(base)) {}
  template <class T>
  T* take(std::uint64_t count) {
    offset_ = (offset_ + kAlign - 1) / kAlign * kAlign;
    T* p = base_ != nullptr ? reinterpret_cast<T*>(base_ + offset_) : nullptr;
    offset_ += static_cast<std::size_t>(count) * sizeof(T);
    return p;
  }
  void* take_bytes(std::size_t bytes) { return take<char>(bytes); }
  std::size_t size() const { return (offset_ + kAlign - 1) / kAlign * kAlign; }

 private:
  static constexpr std::size_t kAlign = 256;
  char* base_;
  std::size_t offset_ = 0;
};

}  // namespace sparcol::device::detail

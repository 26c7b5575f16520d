// Device-to-device copy: the bandwidth reference of the kernel benchmark (bench/bench_kernels.cu).
//
// copy(): cudaMemcpyAsync, what the driver's copy engine or copy kernel reaches; every streaming
// kernel is compared with it. copy_kernel(): the same copy through sparcol's generic elementwise
// launch (launch.cuh), so the benchmark also shows what the launch scheme of the fused updates
// reaches on the simplest possible body. Bytes moved per element: 4 read + 4 written.
#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

void copy(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n) {
  if (n == 0) return;
  detail::dev(d_dst, "copy: dst");
  detail::dev(d_src, "copy: src");
  SPARCOL_CUDA_CHECK(
      cudaMemcpyAsync(d_dst, d_src, n * sizeof(float), cudaMemcpyDeviceToDevice, detail::cuda_stream(s)));
}

void copy_kernel(const Stream& s, float* d_dst, const float* d_src, std::uint64_t n) {
  if (n == 0) return;
  detail::dev(d_dst, "copy_kernel: dst");
  detail::dev(d_src, "copy_kernel: src");
  detail::launch_elementwise(s, n, detail::CopyOp{d_dst, d_src});
}

}  // namespace sparcol::device

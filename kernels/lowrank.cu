// PowerSGD's small products, Gram-Schmidt and update (ALGORITHMS.md 10.3; declared in ops.hpp).
//
// The products run through the generic elementwise kernel (launch.cuh) with one output element per
// item: that thread sums the whole inner dimension in double, in ascending order (element_ops.hpp),
// which is what the CPU twin does, so the results agree bit for bit. The Gram-Schmidt is one block:
// thread 0 sums each norm and dot in row order, and the block divides and subtracts the columns.
// Sizes: r is 1 to 4, n and m are a layer's dimensions; these kernels are far below the bandwidth of
// the fused updates, and the two all-reduces of the step dominate at the sizes PowerSGD is used for.
#include "launch.cuh"
#include "sparcol/device/ops.hpp"

namespace sparcol::device {

using detail::dev;
using detail::launch_elementwise;

namespace {

__global__ void orthonormalize_kernel(float* p, std::uint64_t n, std::uint64_t r) {
  __shared__ float shared_value;
  for (std::uint64_t c = 0; c < r; ++c) {
    if (threadIdx.x == 0)
      shared_value = fadd(static_cast<float>(sqrt(detail::column_dot(p, n, r, c, c))), 1e-8f);
    __syncthreads();
    const float div = shared_value;
    for (std::uint64_t i = threadIdx.x; i < n; i += blockDim.x) p[i * r + c] = fdiv(p[i * r + c], div);
    __syncthreads();
    for (std::uint64_t c2 = c + 1; c2 < r; ++c2) {
      if (threadIdx.x == 0) shared_value = static_cast<float>(detail::column_dot(p, n, r, c, c2));
      __syncthreads();
      const float fd = shared_value;
      for (std::uint64_t i = threadIdx.x; i < n; i += blockDim.x)
        p[i * r + c2] = fsub(p[i * r + c2], fmul(fd, p[i * r + c]));
      __syncthreads();
    }
  }
}

}  // namespace

void lowrank_multiply(const Stream& s, const float* d_a, std::uint64_t n, std::uint64_t m, const float* d_b,
                      std::uint64_t r, float* d_out) {
  if (n * r == 0) return;
  dev(d_a, "lowrank_multiply: a");
  dev(d_b, "lowrank_multiply: b");
  dev(d_out, "lowrank_multiply: out");
  launch_elementwise(s, n * r, detail::LowrankMultiplyOp{d_a, d_b, d_out, m, r});
}

void lowrank_multiply_t(const Stream& s, const float* d_a, std::uint64_t n, std::uint64_t m, const float* d_p,
                        std::uint64_t r, float* d_out) {
  if (m * r == 0) return;
  dev(d_a, "lowrank_multiply_t: a");
  dev(d_p, "lowrank_multiply_t: p");
  dev(d_out, "lowrank_multiply_t: out");
  launch_elementwise(s, m * r, detail::LowrankMultiplyTOp{d_a, d_p, d_out, n, m, r});
}

void lowrank_outer(const Stream& s, const float* d_p, const float* d_q, std::uint64_t n, std::uint64_t m,
                   std::uint64_t r, float* d_out) {
  if (n * m == 0) return;
  dev(d_p, "lowrank_outer: p");
  dev(d_q, "lowrank_outer: q");
  dev(d_out, "lowrank_outer: out");
  launch_elementwise(s, n * m, detail::LowrankOuterOp{d_p, d_q, d_out, m, r});
}

void orthonormalize_columns(const Stream& s, float* d_p, std::uint64_t n, std::uint64_t r) {
  if (n * r == 0) return;
  dev(d_p, "orthonormalize_columns: p");
  orthonormalize_kernel<<<1, detail::kBlockThreads, 0, detail::cuda_stream(s)>>>(d_p, n, r);
  SPARCOL_CUDA_CHECK_LAUNCH();
}

void add_vectors(const Stream& s, float* d_dst, const float* d_a, const float* d_b, std::uint64_t n) {
  if (n == 0) return;
  dev(d_dst, "add_vectors: dst");
  dev(d_a, "add_vectors: a");
  dev(d_b, "add_vectors: b");
  launch_elementwise(s, n, detail::AddVectorsOp{d_dst, d_a, d_b});
}

void sub_vectors(const Stream& s, float* d_dst, const float* d_a, const float* d_b, std::uint64_t n) {
  if (n == 0) return;
  dev(d_dst, "sub_vectors: dst");
  dev(d_a, "sub_vectors: a");
  dev(d_b, "sub_vectors: b");
  launch_elementwise(s, n, detail::SubVectorsOp{d_dst, d_a, d_b});
}

void divide(const Stream& s, float* d_dst, const float* d_src, float divisor, std::uint64_t n) {
  if (n == 0) return;
  dev(d_dst, "divide: dst");
  dev(d_src, "divide: src");
  launch_elementwise(s, n, detail::DivideOp{d_dst, d_src, divisor});
}

void powersgd_apply(const Stream& s, float* d_m, float* d_x, const float* d_a, float lambda, float eta,
                    float wd, std::uint64_t n) {
  if (n == 0) return;
  dev(d_m, "powersgd_apply: m");
  dev(d_x, "powersgd_apply: x");
  dev(d_a, "powersgd_apply: a");
  launch_elementwise(s, n, detail::PowerSgdApplyOp{d_m, d_x, d_a, lambda, eta, wd});
}

}  // namespace sparcol::device

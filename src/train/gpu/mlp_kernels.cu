// Kernels of the MLP on the GPU (src/train/gpu/gpu_mlp.cpp): the layers' elementwise parts, the bias
// gradient and the softmax cross-entropy; the GEMMs are cuBLAS's. Each kernel computes what the CPU
// layer of src/train/ops.cpp computes, element by element in the same order where a sum is taken
// (bias gradient: rows in ascending order; cross-entropy: classes in ascending order, in double), so
// that the only difference from the CPU model is the GEMMs' summation order.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "gpu_kernels.hpp"
#include "sparcol/core/error.hpp"

namespace sparcol::train::gpu {

namespace {

constexpr int kThreads = 256;

unsigned blocks_for(std::uint64_t work) {
  const std::uint64_t b = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(b < 65535u * 16u ? (b > 0 ? b : 1) : 65535u * 16u);
}

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) {
    throw Error(ErrorCode::kCuda, -1, std::string(what) + ": launch failed: " + cudaGetErrorString(e));
  }
}

cudaStream_t as_stream(void* s) {
  return static_cast<cudaStream_t>(s);
}

__global__ void bias_act_kernel(float* y, const float* b, std::uint64_t rows, std::uint64_t cols, bool relu) {
  const std::uint64_t count = rows * cols;
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    float v = __fadd_rn(y[i], b[i % cols]);
    if (relu && !(v > 0.0f)) v = 0.0f;
    y[i] = v;
  }
}

__global__ void relu_backward_kernel(const float* y, float* dy, std::uint64_t count) {
  for (std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<std::uint64_t>(gridDim.x) * blockDim.x) {
    if (!(y[i] > 0.0f)) dy[i] = 0.0f;
  }
}

// db[c] = sum over rows r (ascending) of dy[r][c]: one thread per column.
__global__ void column_sum_kernel(const float* dy, float* db, std::uint64_t rows, std::uint64_t cols) {
  const std::uint64_t c = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (c >= cols) return;
  float s = 0.0f;
  for (std::uint64_t r = 0; r < rows; ++r) s = __fadd_rn(s, dy[r * cols + c]);
  db[c] = s;
}

// One thread per row: loss of the row (double), the correct flag (first maximal logit is the
// label), and d(mean loss)/d(logits) = (softmax - onehot) / n.
__global__ void softmax_xent_kernel(const float* logits, const std::int32_t* labels, std::uint64_t n, int k,
                                    float* dlogits, double* loss, std::uint32_t* correct) {
  const std::uint64_t i = blockIdx.x * static_cast<std::uint64_t>(blockDim.x) + threadIdx.x;
  if (i >= n) return;
  const float* z = logits + i * static_cast<std::uint64_t>(k);
  int best = 0;
  for (int j = 1; j < k; ++j) {
    if (z[j] > z[best]) best = j;
  }
  const int label = labels[i];
  correct[i] = best == label ? 1u : 0u;
  const double zmax = z[best];
  double sum = 0.0;
  for (int j = 0; j < k; ++j) sum += exp(static_cast<double>(z[j]) - zmax);
  const double log_sum = log(sum);
  loss[i] = log_sum + zmax - z[label];
  if (dlogits != nullptr) {
    float* d = dlogits + i * static_cast<std::uint64_t>(k);
    for (int j = 0; j < k; ++j) {
      const double p = exp(static_cast<double>(z[j]) - zmax - log_sum);
      d[j] = static_cast<float>((p - (j == label ? 1.0 : 0.0)) / static_cast<double>(n));
    }
  }
}

}  // namespace

void bias_act(void* stream, float* y, const float* b, std::uint64_t rows, std::uint64_t cols, bool relu) {
  if (rows * cols == 0) return;
  bias_act_kernel<<<blocks_for(rows * cols), kThreads, 0, as_stream(stream)>>>(y, b, rows, cols, relu);
  check_launch("gpu mlp: bias and ReLU");
}

void relu_backward(void* stream, const float* y, float* dy, std::uint64_t count) {
  if (count == 0) return;
  relu_backward_kernel<<<blocks_for(count), kThreads, 0, as_stream(stream)>>>(y, dy, count);
  check_launch("gpu mlp: ReLU backward");
}

void column_sum(void* stream, const float* dy, float* db, std::uint64_t rows, std::uint64_t cols) {
  if (cols == 0) return;
  column_sum_kernel<<<blocks_for(cols), kThreads, 0, as_stream(stream)>>>(dy, db, rows, cols);
  check_launch("gpu mlp: bias gradient");
}

void softmax_xent(void* stream, const float* logits, const std::int32_t* labels, std::uint64_t n, int k,
                  float* dlogits, double* loss, std::uint32_t* correct) {
  if (n == 0) return;
  softmax_xent_kernel<<<blocks_for(n), kThreads, 0, as_stream(stream)>>>(logits, labels, n, k, dlogits, loss,
                                                                         correct);
  check_launch("gpu mlp: softmax cross-entropy");
}

}  // namespace sparcol::train::gpu

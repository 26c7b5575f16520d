// Launchers of the MLP's GPU kernels (mlp_kernels.cu), internal to sparcol_train. Every pointer is
// device memory; `stream` is a cudaStream_t as an opaque pointer (nullptr: the legacy stream).
// Launch failures throw Error(kCuda).
#pragma once

#include <cstdint>

namespace sparcol::train::gpu {

// y[r][c] = y[r][c] + b[c], then max(., 0) when relu (the CPU's linear_forward bias and relu_forward).
void bias_act(void* stream, float* y, const float* b, std::uint64_t rows, std::uint64_t cols, bool relu);
// dy[i] = 0 where !(y[i] > 0) (ops::relu_backward).
void relu_backward(void* stream, const float* y, float* dy, std::uint64_t count);
// db[c] = sum over r = 0..rows-1, in that order, of dy[r][c] (the bias gradient of linear_backward).
void column_sum(void* stream, const float* dy, float* db, std::uint64_t rows, std::uint64_t cols);
// Per row i of logits [n][k]: loss[i] (double), correct[i] (1 when the first maximal logit is the
// label) and, if dlogits is non-null, d(mean loss)/d(logits) (ops::softmax_cross_entropy).
void softmax_xent(void* stream, const float* logits, const std::int32_t* labels, std::uint64_t n, int k,
                  float* dlogits, double* loss, std::uint32_t* correct);

}  // namespace sparcol::train::gpu

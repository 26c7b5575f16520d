// CPU layer kernels of the native models (internal to sparcol_train): forward and backward of
// linear, convolution (im2col + sgemm), ReLU, 2x2 max pooling, GroupNorm, BatchNorm, global average
// pooling, the ResNet "option A" shortcut and softmax cross-entropy.
//
// Layouts. Fully connected layers use [N][features]. Convolutional layers use channel-major
// activations, [C][N][H][W] ("CNHW"): with im2col columns ordered (n, h, w), one sgemm
// W[O][C*k*k] x col[C*k*k][N*Ho*Wo] produces the output directly in CNHW, for the whole batch at once
// and without transposes, and BatchNorm's per-channel sets are contiguous.
//
// Every reduction runs sequentially in a fixed order (statistics in double), so results are bitwise
// reproducible given a single-threaded BLAS. Backward functions overwrite their outputs (dx, dw, db)
// unless a comment says "accumulates". Pointers named dx may be null when the input gradient is not
// needed (first layer).
#pragma once

#include <cstddef>
#include <cstdint>

namespace sparcol::train::ops {

// Row-major C[m][n] = alpha * op(A)[m][k] * op(B)[k][n] + beta * C, through cblas_sgemm. Leading
// dimensions are the natural ones (A is m x k, or k x m when transposed; likewise B).
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, const float* b,
          float beta, float* c);

// y[n][out] = x[n][in] * w[out][in]^T + b[out] (b may be null).
void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out);
void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n,
                     int in, int out);

void relu_forward(float* x, std::size_t count);                    // in place
void relu_backward(const float* y, float* dy, std::size_t count);  // dy *= (y > 0), in place

// Convolution geometry: input [c_in][n][h][w], output [c_out][n][ho][wo], square kernel k.
struct ConvGeom {
  int c_in = 0, c_out = 0, k = 0, stride = 1, pad = 0, n = 0, h = 0, w = 0;
  int ho() const { return (h + 2 * pad - k) / stride + 1; }
  int wo() const { return (w + 2 * pad - k) / stride + 1; }
  std::size_t col_rows() const { return static_cast<std::size_t>(c_in) * k * k; }
  std::size_t col_cols() const { return static_cast<std::size_t>(n) * ho() * wo(); }
  std::size_t out_size() const { return static_cast<std::size_t>(c_out) * col_cols(); }
};

void im2col(const float* x, const ConvGeom& g, float* col);
void col2im(const float* col, const ConvGeom& g, float* dx);  // overwrites dx
// col: scratch of col_rows() * col_cols() floats. b may be null (no bias).
void conv_forward(const float* x, const float* w, const float* b, float* y, const ConvGeom& g, float* col);
// Recomputes im2col(x) into col rather than keeping every layer's columns alive; col then holds
// d(col) before col2im. db may be null (no bias), dx may be null.
void conv_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                   const ConvGeom& g, float* col);

// 2x2 max pooling, stride 2, over planes of h x w (h, w even). argmax: per output, the input offset
// within its plane; ties go to the first maximum in row-major order.
void maxpool2_forward(const float* x, float* y, std::uint32_t* argmax, std::size_t planes, int h, int w);
void maxpool2_backward(const float* dy, const std::uint32_t* argmax, float* dx, std::size_t planes, int h,
                       int w);

// GroupNorm on CNHW: c channels in `groups` groups of c/groups channels; statistics per (sample,
// group) over (c/groups) * hw values; per-channel affine gamma, beta. mean/rstd: [n][groups].
void groupnorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                       float* rstd, int c, int n, int hw, int groups, float eps);
void groupnorm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                        const float* rstd, float* dx, float* dgamma, float* dbeta, int c, int n, int hw,
                        int groups);

// BatchNorm on CNHW, training mode: statistics per channel over n*hw values (biased variance for the
// normalisation); running_mean/var updated with momentum (unbiased variance, PyTorch convention).
// mean/rstd: [c], saved for backward.
void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                             float* rstd, float* running_mean, float* running_var, int c, std::size_t nhw,
                             float eps, float momentum);
void batchnorm_backward_train(const float* dy, const float* x, const float* gamma, const float* mean,
                              const float* rstd, float* dx, float* dgamma, float* dbeta, int c,
                              std::size_t nhw);
// Inference mode: a fixed per-channel affine map from the running statistics. mean/rstd receive
// the statistics used, so batchnorm_backward_eval can run from them.
void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                            float* rstd, const float* running_mean, const float* running_var, int c,
                            std::size_t nhw, float eps);
void batchnorm_backward_eval(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, int c,
                             std::size_t nhw);

// Global average pooling: x [c][n][hw] -> y [n][c].
void avgpool_forward(const float* x, float* y, int c, int n, int hw);
void avgpool_backward(const float* dy, float* dx, int c, int n, int hw);

// Layout changes between [n][c][hw] and [c][n][hw].
void nchw_to_cnhw(const float* x, float* y, int n, int c, int hw);
void cnhw_to_nchw(const float* x, float* y, int c, int n, int hw);

// ResNet "option A" shortcut (He et al. 2016, CIFAR ResNets): subsample by `stride` and place the
// c_in input channels at output channels [pad_lo, pad_lo + c_in), zeros elsewhere, with
// pad_lo = (c_out - c_in) / 2. Parameter-free. x [c_in][n][h][w] -> y [c_out][n][ho][wo].
void shortcut_forward(const float* x, float* y, int c_in, int c_out, int n, int h, int w, int stride);
// Accumulates into dx (the block input's gradient also receives the residual branch's).
void shortcut_backward_accumulate(const float* dy, float* dx, int c_in, int c_out, int n, int h, int w,
                                  int stride);

void add_inplace(float* y, const float* x, std::size_t count);  // y += x

// Mean softmax cross-entropy of logits [n][k] against labels; if dlogits is non-null, writes
// d(mean loss)/d(logits). Returns the mean loss; *correct (if non-null) receives the number of rows
// whose first maximal logit is the label.
double softmax_cross_entropy(const float* logits, const std::int32_t* labels, int n, int k, float* dlogits,
                             std::size_t* correct = nullptr);

}  // namespace sparcol::train::ops

#include "ops.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace sparcol::train::ops {

void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, const float* b,
          float beta, float* c) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n,
              k, alpha, a, trans_a ? m : k, b, trans_b ? k : n, beta, c, n);
}

// ---------------------------------------------------------------------------------------------
// Linear
// ---------------------------------------------------------------------------------------------
void linear_forward(const float* x, const float* w, const float* b, float* y, int n, int in, int out) {
  gemm(false, true, n, out, in, 1.0f, x, w, 0.0f, y);
  if (b == nullptr) return;
  for (int i = 0; i < n; ++i) {
    float* row = y + static_cast<std::size_t>(i) * out;
    for (int o = 0; o < out; ++o) row[o] += b[o];
  }
}

void linear_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int n,
                     int in, int out) {
  gemm(true, false, out, in, n, 1.0f, dy, x, 0.0f, dw);  // dw[out][in] = dy^T x
  if (db != nullptr) {
    std::fill(db, db + out, 0.0f);
    for (int i = 0; i < n; ++i) {
      const float* row = dy + static_cast<std::size_t>(i) * out;
      for (int o = 0; o < out; ++o) db[o] += row[o];
    }
  }
  if (dx != nullptr) gemm(false, false, n, in, out, 1.0f, dy, w, 0.0f, dx);  // dx[n][in] = dy w
}

void relu_forward(float* x, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) x[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void relu_backward(const float* y, float* dy, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

// ---------------------------------------------------------------------------------------------
// Convolution by im2col. Column row r = (ci, ki, kj), column j = (n, ho, wo):
//   col[r][j] = x[ci][n][ho*stride - pad + ki][wo*stride - pad + kj], or 0 outside the image.
// ---------------------------------------------------------------------------------------------
namespace {

// Output columns [lo, hi) whose input column ow * stride - pad + kj lies inside [0, w): the interior
// where im2col copies and col2im adds without bounds checks.
void valid_columns(const ConvGeom& g, int kj, int* lo, int* hi) {
  const int wo = g.wo();
  int a = 0;
  while (a < wo && a * g.stride - g.pad + kj < 0) ++a;
  int b = wo;
  while (b > a && (b - 1) * g.stride - g.pad + kj >= g.w) --b;
  *lo = a;
  *hi = b;
}

}  // namespace

void im2col(const float* x, const ConvGeom& g, float* col) {
  const int ho = g.ho(), wo = g.wo();
  const std::size_t plane = static_cast<std::size_t>(g.h) * g.w;
  for (int ci = 0; ci < g.c_in; ++ci) {
    for (int ki = 0; ki < g.k; ++ki) {
      for (int kj = 0; kj < g.k; ++kj) {
        int lo = 0, hi = 0;
        valid_columns(g, kj, &lo, &hi);
        const int shift = kj - g.pad;
        for (int n = 0; n < g.n; ++n) {
          const float* src = x + (static_cast<std::size_t>(ci) * g.n + n) * plane;
          for (int oh = 0; oh < ho; ++oh, col += wo) {
            const int ih = oh * g.stride - g.pad + ki;
            if (ih < 0 || ih >= g.h) {
              std::fill(col, col + wo, 0.0f);
              continue;
            }
            const float* row = src + static_cast<std::size_t>(ih) * g.w + shift;
            std::fill(col, col + lo, 0.0f);
            if (g.stride == 1) {
              std::memcpy(col + lo, row + lo, sizeof(float) * static_cast<std::size_t>(hi - lo));
            } else {
              for (int ow = lo; ow < hi; ++ow) col[ow] = row[ow * g.stride];
            }
            std::fill(col + hi, col + wo, 0.0f);
          }
        }
      }
    }
  }
}

void col2im(const float* col, const ConvGeom& g, float* dx) {
  const int ho = g.ho(), wo = g.wo();
  const std::size_t plane = static_cast<std::size_t>(g.h) * g.w;
  std::fill(dx, dx + static_cast<std::size_t>(g.c_in) * g.n * plane, 0.0f);
  for (int ci = 0; ci < g.c_in; ++ci) {
    for (int ki = 0; ki < g.k; ++ki) {
      for (int kj = 0; kj < g.k; ++kj) {
        int lo = 0, hi = 0;
        valid_columns(g, kj, &lo, &hi);
        const int shift = kj - g.pad;
        for (int n = 0; n < g.n; ++n) {
          float* dst = dx + (static_cast<std::size_t>(ci) * g.n + n) * plane;
          for (int oh = 0; oh < ho; ++oh, col += wo) {
            const int ih = oh * g.stride - g.pad + ki;
            if (ih < 0 || ih >= g.h) continue;
            float* row = dst + static_cast<std::size_t>(ih) * g.w + shift;
            if (g.stride == 1) {
              for (int ow = lo; ow < hi; ++ow) row[ow] += col[ow];
            } else {
              for (int ow = lo; ow < hi; ++ow) row[ow * g.stride] += col[ow];
            }
          }
        }
      }
    }
  }
}

void conv_forward(const float* x, const float* w, const float* b, float* y, const ConvGeom& g, float* col) {
  const int rows = static_cast<int>(g.col_rows()), cols = static_cast<int>(g.col_cols());
  im2col(x, g, col);
  gemm(false, false, g.c_out, cols, rows, 1.0f, w, col, 0.0f, y);
  if (b == nullptr) return;
  for (int o = 0; o < g.c_out; ++o) {
    float* plane = y + static_cast<std::size_t>(o) * cols;
    for (int j = 0; j < cols; ++j) plane[j] += b[o];
  }
}

void conv_backward(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db,
                   const ConvGeom& g, float* col) {
  const int rows = static_cast<int>(g.col_rows()), cols = static_cast<int>(g.col_cols());
  im2col(x, g, col);
  gemm(false, true, g.c_out, rows, cols, 1.0f, dy, col, 0.0f, dw);  // dw = dy col^T
  if (db != nullptr) {
    for (int o = 0; o < g.c_out; ++o) {
      const float* plane = dy + static_cast<std::size_t>(o) * cols;
      float s = 0.0f;
      for (int j = 0; j < cols; ++j) s += plane[j];
      db[o] = s;
    }
  }
  if (dx == nullptr) return;
  gemm(true, false, rows, cols, g.c_out, 1.0f, w, dy, 0.0f, col);  // dcol = w^T dy (col is free now)
  col2im(col, g, dx);
}

// ---------------------------------------------------------------------------------------------
// Max pooling
// ---------------------------------------------------------------------------------------------
void maxpool2_forward(const float* x, float* y, std::uint32_t* argmax, std::size_t planes, int h, int w) {
  const int ho = h / 2, wo = w / 2;
  for (std::size_t p = 0; p < planes; ++p) {
    const float* src = x + p * h * w;
    for (int oh = 0; oh < ho; ++oh) {
      for (int ow = 0; ow < wo; ++ow) {
        const auto top_left = static_cast<std::uint32_t>(2 * oh * w + 2 * ow),
                   row = static_cast<std::uint32_t>(w);
        std::uint32_t best = top_left;
        for (std::uint32_t cand : {top_left + 1, top_left + row, top_left + row + 1}) {
          if (src[cand] > src[best]) best = cand;
        }
        *y++ = src[best];
        *argmax++ = best;
      }
    }
  }
}

void maxpool2_backward(const float* dy, const std::uint32_t* argmax, float* dx, std::size_t planes, int h,
                       int w) {
  const std::size_t plane = static_cast<std::size_t>(h) * w,
                    out_plane = static_cast<std::size_t>(h / 2) * (w / 2);
  std::fill(dx, dx + planes * plane, 0.0f);
  for (std::size_t p = 0; p < planes; ++p) {
    float* dst = dx + p * plane;
    for (std::size_t i = 0; i < out_plane; ++i) dst[*argmax++] += *dy++;
  }
}

// ---------------------------------------------------------------------------------------------
// Normalisation. Both norms share one backward formula per statistics set S of m values with
// xhat = (x - mean) * rstd and dxhat = dy * gamma:
//   dx = rstd * (dxhat - mean_S(dxhat) - xhat * mean_S(dxhat * xhat)).
// ---------------------------------------------------------------------------------------------
namespace {

// Mean and 1/sqrt(var + eps) of the values of `segments` contiguous runs of `len` values, the runs
// starting at base + i * stride. Two passes in double.
void moments(const float* base, std::size_t segments, std::size_t stride, std::size_t len, float eps,
             float* mean_out, float* rstd_out, double* var_out = nullptr) {
  double sum = 0.0;
  for (std::size_t s = 0; s < segments; ++s) {
    const float* v = base + s * stride;
    for (std::size_t i = 0; i < len; ++i) sum += v[i];
  }
  const double m = static_cast<double>(segments * len);
  const double mean = sum / m;
  double sq = 0.0;
  for (std::size_t s = 0; s < segments; ++s) {
    const float* v = base + s * stride;
    for (std::size_t i = 0; i < len; ++i) {
      const double d = v[i] - mean;
      sq += d * d;
    }
  }
  const double var = sq / m;
  *mean_out = static_cast<float>(mean);
  *rstd_out = static_cast<float>(1.0 / std::sqrt(var + eps));
  if (var_out != nullptr) *var_out = var;
}

}  // namespace

void groupnorm_forward(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                       float* rstd, int c, int n, int hw, int groups, float eps) {
  const int cpg = c / groups;
  const std::size_t plane = static_cast<std::size_t>(hw), chan = static_cast<std::size_t>(n) * plane;
  for (int s = 0; s < n; ++s) {
    for (int gi = 0; gi < groups; ++gi) {
      // The group's planes: channels gi*cpg .. of sample s, one plane apart by a channel (n planes).
      const std::size_t first = static_cast<std::size_t>(gi) * cpg * chan + s * plane;
      const std::size_t stat = static_cast<std::size_t>(s) * groups + gi;
      moments(x + first, cpg, chan, plane, eps, &mean[stat], &rstd[stat]);
      for (int ci = 0; ci < cpg; ++ci) {
        const int ch = gi * cpg + ci;
        const float a = gamma[ch] * rstd[stat], b = beta[ch] - mean[stat] * a;
        const float* src = x + first + ci * chan;
        float* dst = y + first + ci * chan;
        for (std::size_t i = 0; i < plane; ++i) dst[i] = src[i] * a + b;
      }
    }
  }
}

void groupnorm_backward(const float* dy, const float* x, const float* gamma, const float* mean,
                        const float* rstd, float* dx, float* dgamma, float* dbeta, int c, int n, int hw,
                        int groups) {
  const int cpg = c / groups;
  const std::size_t plane = static_cast<std::size_t>(hw), chan = static_cast<std::size_t>(n) * plane;
  std::vector<double> dg(c, 0.0), db(c, 0.0);
  for (int s = 0; s < n; ++s) {
    for (int gi = 0; gi < groups; ++gi) {
      const std::size_t first = static_cast<std::size_t>(gi) * cpg * chan + s * plane;
      const std::size_t stat = static_cast<std::size_t>(s) * groups + gi;
      const double mu = mean[stat], rs = rstd[stat];
      double sum_dxhat = 0.0, sum_dxhat_xhat = 0.0;
      for (int ci = 0; ci < cpg; ++ci) {
        const int ch = gi * cpg + ci;
        const float* g = dy + first + ci * chan;
        const float* v = x + first + ci * chan;
        double s_dy = 0.0, s_dy_xhat = 0.0;
        for (std::size_t i = 0; i < plane; ++i) {
          const double xhat = (v[i] - mu) * rs;
          s_dy += g[i];
          s_dy_xhat += g[i] * xhat;
        }
        dg[ch] += s_dy_xhat;
        db[ch] += s_dy;
        sum_dxhat += s_dy * gamma[ch];
        sum_dxhat_xhat += s_dy_xhat * gamma[ch];
      }
      const double m = static_cast<double>(cpg) * plane;
      const double mean_dxhat = sum_dxhat / m, mean_dxhat_xhat = sum_dxhat_xhat / m;
      for (int ci = 0; ci < cpg; ++ci) {
        const int ch = gi * cpg + ci;
        const float* g = dy + first + ci * chan;
        const float* v = x + first + ci * chan;
        float* out = dx + first + ci * chan;
        for (std::size_t i = 0; i < plane; ++i) {
          const double xhat = (v[i] - mu) * rs;
          out[i] = static_cast<float>(rs * (g[i] * gamma[ch] - mean_dxhat - xhat * mean_dxhat_xhat));
        }
      }
    }
  }
  for (int ch = 0; ch < c; ++ch) {
    dgamma[ch] = static_cast<float>(dg[ch]);
    dbeta[ch] = static_cast<float>(db[ch]);
  }
}

void batchnorm_forward_train(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                             float* rstd, float* running_mean, float* running_var, int c, std::size_t nhw,
                             float eps, float momentum) {
  for (int ch = 0; ch < c; ++ch) {
    const float* src = x + ch * nhw;
    float* dst = y + ch * nhw;
    double var = 0.0;
    moments(src, 1, nhw, nhw, eps, &mean[ch], &rstd[ch], &var);
    const float a = gamma[ch] * rstd[ch], b = beta[ch] - mean[ch] * a;
    for (std::size_t i = 0; i < nhw; ++i) dst[i] = src[i] * a + b;
    const double unbiased = nhw > 1 ? var * static_cast<double>(nhw) / static_cast<double>(nhw - 1) : var;
    running_mean[ch] = (1.0f - momentum) * running_mean[ch] + momentum * mean[ch];
    running_var[ch] = (1.0f - momentum) * running_var[ch] + momentum * static_cast<float>(unbiased);
  }
}

void batchnorm_backward_train(const float* dy, const float* x, const float* gamma, const float* mean,
                              const float* rstd, float* dx, float* dgamma, float* dbeta, int c,
                              std::size_t nhw) {
  for (int ch = 0; ch < c; ++ch) {
    const float* g = dy + ch * nhw;
    const float* v = x + ch * nhw;
    float* out = dx + ch * nhw;
    const double mu = mean[ch], rs = rstd[ch];
    double s_dy = 0.0, s_dy_xhat = 0.0;
    for (std::size_t i = 0; i < nhw; ++i) {
      s_dy += g[i];
      s_dy_xhat += g[i] * ((v[i] - mu) * rs);
    }
    dgamma[ch] = static_cast<float>(s_dy_xhat);
    dbeta[ch] = static_cast<float>(s_dy);
    const double m = static_cast<double>(nhw);
    const double mean_dxhat = s_dy * gamma[ch] / m, mean_dxhat_xhat = s_dy_xhat * gamma[ch] / m;
    for (std::size_t i = 0; i < nhw; ++i) {
      const double xhat = (v[i] - mu) * rs;
      out[i] = static_cast<float>(rs * (g[i] * gamma[ch] - mean_dxhat - xhat * mean_dxhat_xhat));
    }
  }
}

void batchnorm_forward_eval(const float* x, const float* gamma, const float* beta, float* y, float* mean,
                            float* rstd, const float* running_mean, const float* running_var, int c,
                            std::size_t nhw, float eps) {
  for (int ch = 0; ch < c; ++ch) {
    mean[ch] = running_mean[ch];
    rstd[ch] = static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var[ch]) + eps));
    const float a = gamma[ch] * rstd[ch], b = beta[ch] - mean[ch] * a;
    const float* src = x + ch * nhw;
    float* dst = y + ch * nhw;
    for (std::size_t i = 0; i < nhw; ++i) dst[i] = src[i] * a + b;
  }
}

void batchnorm_backward_eval(const float* dy, const float* x, const float* gamma, const float* mean,
                             const float* rstd, float* dx, float* dgamma, float* dbeta, int c,
                             std::size_t nhw) {
  for (int ch = 0; ch < c; ++ch) {
    const float* g = dy + ch * nhw;
    const float* v = x + ch * nhw;
    float* out = dx + ch * nhw;
    double s_dy = 0.0, s_dy_xhat = 0.0;
    const float scale = gamma[ch] * rstd[ch];
    for (std::size_t i = 0; i < nhw; ++i) {
      s_dy += g[i];
      s_dy_xhat += g[i] * ((static_cast<double>(v[i]) - mean[ch]) * rstd[ch]);
      out[i] = g[i] * scale;
    }
    dgamma[ch] = static_cast<float>(s_dy_xhat);
    dbeta[ch] = static_cast<float>(s_dy);
  }
}

// ---------------------------------------------------------------------------------------------
// Pooling, layouts, shortcut
// ---------------------------------------------------------------------------------------------
void avgpool_forward(const float* x, float* y, int c, int n, int hw) {
  for (int ch = 0; ch < c; ++ch) {
    for (int s = 0; s < n; ++s) {
      const float* v = x + (static_cast<std::size_t>(ch) * n + s) * hw;
      double sum = 0.0;
      for (int i = 0; i < hw; ++i) sum += v[i];
      y[static_cast<std::size_t>(s) * c + ch] = static_cast<float>(sum / hw);
    }
  }
}

void avgpool_backward(const float* dy, float* dx, int c, int n, int hw) {
  const float inv = 1.0f / static_cast<float>(hw);
  for (int ch = 0; ch < c; ++ch) {
    for (int s = 0; s < n; ++s) {
      float* v = dx + (static_cast<std::size_t>(ch) * n + s) * hw;
      std::fill(v, v + hw, dy[static_cast<std::size_t>(s) * c + ch] * inv);
    }
  }
}

void nchw_to_cnhw(const float* x, float* y, int n, int c, int hw) {
  for (int s = 0; s < n; ++s) {
    for (int ch = 0; ch < c; ++ch) {
      std::memcpy(y + (static_cast<std::size_t>(ch) * n + s) * hw,
                  x + (static_cast<std::size_t>(s) * c + ch) * hw, sizeof(float) * hw);
    }
  }
}

void cnhw_to_nchw(const float* x, float* y, int c, int n, int hw) {
  for (int s = 0; s < n; ++s) {
    for (int ch = 0; ch < c; ++ch) {
      std::memcpy(y + (static_cast<std::size_t>(s) * c + ch) * hw,
                  x + (static_cast<std::size_t>(ch) * n + s) * hw, sizeof(float) * hw);
    }
  }
}

void shortcut_forward(const float* x, float* y, int c_in, int c_out, int n, int h, int w, int stride) {
  const int ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
  const int pad_lo = (c_out - c_in) / 2;
  const std::size_t out_chan = static_cast<std::size_t>(n) * ho * wo,
                    in_chan = static_cast<std::size_t>(n) * h * w;
  std::fill(y, y + static_cast<std::size_t>(c_out) * out_chan, 0.0f);
  for (int ci = 0; ci < c_in; ++ci) {
    float* dst = y + static_cast<std::size_t>(ci + pad_lo) * out_chan;
    for (int s = 0; s < n; ++s) {
      const float* src = x + ci * in_chan + static_cast<std::size_t>(s) * h * w;
      for (int oh = 0; oh < ho; ++oh) {
        for (int ow = 0; ow < wo; ++ow) *dst++ = src[static_cast<std::size_t>(oh * stride) * w + ow * stride];
      }
    }
  }
}

void shortcut_backward_accumulate(const float* dy, float* dx, int c_in, int c_out, int n, int h, int w,
                                  int stride) {
  const int ho = (h - 1) / stride + 1, wo = (w - 1) / stride + 1;
  const int pad_lo = (c_out - c_in) / 2;
  const std::size_t out_chan = static_cast<std::size_t>(n) * ho * wo,
                    in_chan = static_cast<std::size_t>(n) * h * w;
  for (int ci = 0; ci < c_in; ++ci) {
    const float* src = dy + static_cast<std::size_t>(ci + pad_lo) * out_chan;
    for (int s = 0; s < n; ++s) {
      float* dst = dx + ci * in_chan + static_cast<std::size_t>(s) * h * w;
      for (int oh = 0; oh < ho; ++oh) {
        for (int ow = 0; ow < wo; ++ow)
          dst[static_cast<std::size_t>(oh * stride) * w + ow * stride] += *src++;
      }
    }
  }
}

void add_inplace(float* y, const float* x, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) y[i] += x[i];
}

// ---------------------------------------------------------------------------------------------
// Loss
// ---------------------------------------------------------------------------------------------
double softmax_cross_entropy(const float* logits, const std::int32_t* labels, int n, int k, float* dlogits,
                             std::size_t* correct) {
  double total = 0.0;
  std::size_t hits = 0;
  for (int i = 0; i < n; ++i) {
    const float* z = logits + static_cast<std::size_t>(i) * k;
    int best = 0;
    for (int j = 1; j < k; ++j) {
      if (z[j] > z[best]) best = j;
    }
    if (best == labels[i]) ++hits;
    const double zmax = z[best];
    double sum = 0.0;
    for (int j = 0; j < k; ++j) sum += std::exp(static_cast<double>(z[j]) - zmax);
    const double log_sum = std::log(sum);
    total += log_sum + zmax - z[labels[i]];
    if (dlogits != nullptr) {
      float* d = dlogits + static_cast<std::size_t>(i) * k;
      for (int j = 0; j < k; ++j) {
        const double p = std::exp(static_cast<double>(z[j]) - zmax - log_sum);
        d[j] = static_cast<float>((p - (j == labels[i] ? 1.0 : 0.0)) / n);
      }
    }
  }
  if (correct != nullptr) *correct = hits;
  return total / n;
}

}  // namespace sparcol::train::ops

// PowerSGD (ALGORITHMS.md 10.3, the paper code's RankKReducer): rank-r' power-iteration compression
// of every parameter matrix, with error feedback and warm start, and the paper's momentum form.
//
// Every tensor with more than one dimension is a matrix M (n x m: n = first dimension, m = the rest
// flattened) with r' = min(r, n, m); tensors of dim <= 1 are all-reduced densely in the first
// all-reduce. Per step, on every rank k:
//   1. M_k = G_k + E_k                      (E_k = 0 without error feedback)
//   2. P = sum_k M_k Q                      (one all-reduce of sum n r' floats + the dense tensors)
//   3. P <- orthonormalize(P): for each column in order, divide it by (its norm + 1e-8), then remove
//      its component from the later columns (the paper code's Gram-Schmidt)
//   4. Q_k = M_k^T P;  Q = mean_k Q_k       (one all-reduce of sum m r' floats)
//   5. Ghat = P Q^T;  E_k <- M_k - Ghat     (error form "paper")  or  M_k - P Q_k^T ("library")
//   6. Ghat <- Ghat + wd x (never compressed);  m <- lambda m + Ghat;  x <- x - eta (Ghat + m)
// Q starts as N(0, 1) draws from a seed common to all ranks (exchange seed, tensor id), and with warm
// start the next step starts from the averaged Q of this one (not re-orthogonalised); without warm
// start every step draws a fresh Q from (seed, step, tensor). Host executor only; the small products
// are plain loops with double accumulators (n m r' multiply-adds each, in a fixed order, so the
// result is identical on every rank and run to run).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <memory>
#include <vector>

#include "methods.hpp"
#include "sparcol/coll/ring_allreduce.hpp"
#include "sparcol/core/error.hpp"
#include "sparcol/core/rng.hpp"

namespace sparcol::optim::detail {

namespace {

constexpr std::uint32_t kStreamPowerSgd = kStreamUser + 13;  // the Q draws

struct Matrix {
  std::uint64_t offset, n, m, r;  // the tensor's elements at offset, n x m row-major, rank r'
  std::uint64_t p_off, q_off;     // its P in pbuf_, its Q in q_ / qbuf_
  std::uint32_t id;               // the tensor's index in the layout (the Q seed)
};

class PowerSgd final : public Optimizer {
 public:
  PowerSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, dense_exchange(c.exchange), e),
        e_(make_buffer("error")),
        mom_(make_buffer("momentum")) {
    std::uint64_t p_len = 0, q_len = 0;
    for (std::size_t i = 0; i < l.tensors.size(); ++i) {
      const TensorSpec& t = l.tensors[i];
      if (t.size == 0) continue;
      const std::uint64_t n = t.dims > 1 && i < l.rows.size() ? l.rows[i] : 0;
      if (t.dims <= 1 || n == 0 || t.size % n != 0) {
        dense_.push_back({t.offset, t.size});
        dense_count_ += t.size;
        continue;
      }
      const std::uint64_t m = t.size / n;
      const std::uint64_t r = std::min<std::uint64_t>(static_cast<std::uint64_t>(c.low_rank), std::min(n, m));
      mats_.push_back({t.offset, n, m, r, p_len, q_len, static_cast<std::uint32_t>(i)});
      p_len += n * r;
      q_len += m * r;
    }
    pbuf_.resize(p_len + dense_count_);
    qbuf_.resize(q_len);
    q_.resize(q_len);
    if (!c.powersgd_error_form_paper) qown_.resize(q_len);
    mk_.resize(n_);
    for (const auto& mt : mats_) draw_q(mt, 0, q_.data() + mt.q_off);
    if (!pbuf_.empty()) ring_p_ = std::make_unique<coll::RingAllreduce>(b, pbuf_.size());
    if (!qbuf_.empty()) ring_q_ = std::make_unique<coll::RingAllreduce>(b, qbuf_.size());
  }

  std::vector<StateBuffer> state() override {
    return {{"error", e_.span()}, {"momentum", mom_.span()}, {"q", {q_.data(), q_.size()}}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    const auto K = static_cast<std::uint64_t>(backend_.size());
    const auto kf = static_cast<float>(K);
    const bool ef = config_.powersgd_error_feedback;
    using Clock = std::chrono::steady_clock;
    auto since = [](Clock::time_point t0) {
      return std::chrono::duration<double>(Clock::now() - t0).count();
    };
    double comm_s = 0;
    const auto t_step = Clock::now();
    float* e = e_.data();
    float* mk = mk_.data();
    // 1. M_k = G_k + E_k (matrices); the dense tensors' gradients go behind the P's.
    for (const auto& mt : mats_)
      for (std::uint64_t i = 0; i < mt.n * mt.m; ++i) mk[mt.offset + i] = g[mt.offset + i] + e[mt.offset + i];
    std::uint64_t pos = pbuf_.size() - dense_count_;
    for (const auto& s : dense_) {
      std::copy_n(g.data() + s.offset, s.size, pbuf_.data() + pos);
      pos += s.size;
    }
    // 2. P = M_k Q, summed over ranks.
    if (!config_.powersgd_warm_start)
      for (const auto& mt : mats_) draw_q(mt, t + 1, q_.data() + mt.q_off);
    for (const auto& mt : mats_)
      multiply(mk + mt.offset, mt.n, mt.m, q_.data() + mt.q_off, mt.r, pbuf_.data() + mt.p_off);
    auto t0 = Clock::now();
    if (ring_p_) ring_p_->run(pbuf_.data(), t);  // fingerprinted: ranks with another rank r fail
    comm_s += since(t0);
    // 3. Orthonormalise P; 4. Q_k = M_k^T P, averaged.
    for (const auto& mt : mats_) {
      orthonormalize(pbuf_.data() + mt.p_off, mt.n, mt.r);
      multiply_t(mk + mt.offset, mt.n, mt.m, pbuf_.data() + mt.p_off, mt.r, qbuf_.data() + mt.q_off);
    }
    if (!qown_.empty()) std::copy(qbuf_.begin(), qbuf_.end(), qown_.begin());
    t0 = Clock::now();
    if (ring_q_) ring_q_->run(qbuf_.data(), t);
    comm_s += since(t0);
    for (auto& v : qbuf_) v /= kf;
    std::copy(qbuf_.begin(), qbuf_.end(), q_.begin());  // the next step's warm start
    // 5. Ghat = P Q^T into the aggregate; E_k <- M_k - Ghat (or M_k - P Q_k^T).
    float* gh = agg_.data();
    pos = pbuf_.size() - dense_count_;
    for (const auto& s : dense_) {
      for (std::uint64_t i = 0; i < s.size; ++i) gh[s.offset + i] = pbuf_[pos + i] / kf;
      pos += s.size;
    }
    for (const auto& mt : mats_) {
      const float* P = pbuf_.data() + mt.p_off;
      outer(P, qbuf_.data() + mt.q_off, mt.n, mt.m, mt.r, gh + mt.offset);
      if (!ef) continue;
      if (qown_.empty()) {
        for (std::uint64_t i = 0; i < mt.n * mt.m; ++i)
          e[mt.offset + i] = mk[mt.offset + i] - gh[mt.offset + i];
      } else {
        float* own = mk_scratch(mt.n * mt.m);
        outer(P, qown_.data() + mt.q_off, mt.n, mt.m, mt.r, own);
        for (std::uint64_t i = 0; i < mt.n * mt.m; ++i) e[mt.offset + i] = mk[mt.offset + i] - own[i];
      }
    }
    const double step_s = since(t_step);
    // 6. Weight decay on the aggregate, then the paper's momentum: m <- lambda m + Ghat,
    //    x <- x - eta (Ghat + m).
    const auto wd = static_cast<float>(config_.weight_decay);
    const auto lambda = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    float* m = mom_.data();
    for (std::uint64_t i = 0; i < n_; ++i) {
      const float a = wd != 0.0f ? gh[i] + wd * x[i] : gh[i];
      m[i] = lambda * m[i] + a;
      x[i] -= eta * (a + m[i]);
    }
    agg_.forget_support();
    // Accounting (ALGORITHMS.md 9, 10.3): (n + m) r' floats per matrix plus the dense tensors, up
    // and down alike.
    CommStats st;
    const double elems = static_cast<double>(pbuf_.size() + qbuf_.size());
    st.elements_up = elems;
    st.elements_up_all = elems * static_cast<double>(K);
    st.elements_down = elems;
    st.bytes_up = st.bytes_down = 4 * (pbuf_.size() + qbuf_.size());
    if (ring_p_) st.bytes_sent += ring_p_->bytes_sent_per_run();
    if (ring_q_) st.bytes_sent += ring_q_->bytes_sent_per_run();
    st.bytes_recv = st.bytes_sent;
    st.dense_elements = static_cast<double>((K + 1) * n_);
    // Two all-reduces a step (P with the dense tensors, then Q); the products, the orthonormalisation
    // and the error update around them are the compression.
    st.rounds = (ring_p_ ? 1u : 0u) + (ring_q_ ? 1u : 0u);
    st.time_comm_s = comm_s;
    st.time_compress_s = step_s - comm_s;
    return st;
  }

 private:
  void draw_q(const Matrix& mt, std::uint64_t step, float* q) const {
    CounterRng rng(config_.exchange.seed ^ (step * 0x9E3779B97F4A7C15ull), kStreamPowerSgd, mt.id);
    for (std::uint64_t i = 0; i < mt.m * mt.r; ++i) q[i] = static_cast<float>(rng.normal());
  }
  // out (n x r) = A (n x m) B (m x r).
  static void multiply(const float* A, std::uint64_t n, std::uint64_t m, const float* B, std::uint64_t r,
                       float* out) {
    std::vector<double> acc(r);
    for (std::uint64_t i = 0; i < n; ++i) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const float* a = A + i * m;
      for (std::uint64_t j = 0; j < m; ++j) {
        const double aij = a[j];
        const float* b = B + j * r;
        for (std::uint64_t c = 0; c < r; ++c) acc[c] += aij * b[c];
      }
      for (std::uint64_t c = 0; c < r; ++c) out[i * r + c] = static_cast<float>(acc[c]);
    }
  }
  // out (m x r) = A^T (A: n x m) P (n x r).
  void multiply_t(const float* A, std::uint64_t n, std::uint64_t m, const float* P, std::uint64_t r,
                  float* out) {
    acc_.assign(m * r, 0.0);
    for (std::uint64_t i = 0; i < n; ++i) {
      const float* a = A + i * m;
      const float* p = P + i * r;
      for (std::uint64_t j = 0; j < m; ++j) {
        const double aij = a[j];
        for (std::uint64_t c = 0; c < r; ++c) acc_[j * r + c] += aij * p[c];
      }
    }
    for (std::uint64_t i = 0; i < m * r; ++i) out[i] = static_cast<float>(acc_[i]);
  }
  // out (n x m) = P (n x r) Q^T (Q: m x r).
  static void outer(const float* P, const float* Q, std::uint64_t n, std::uint64_t m, std::uint64_t r,
                    float* out) {
    for (std::uint64_t i = 0; i < n; ++i)
      for (std::uint64_t j = 0; j < m; ++j) {
        double s = 0;
        for (std::uint64_t c = 0; c < r; ++c) s += static_cast<double>(P[i * r + c]) * Q[j * r + c];
        out[i * m + j] = static_cast<float>(s);
      }
  }
  // The paper code's Gram-Schmidt over the r columns of P (n x r, row-major).
  static void orthonormalize(float* P, std::uint64_t n, std::uint64_t r) {
    for (std::uint64_t c = 0; c < r; ++c) {
      double norm = 0;
      for (std::uint64_t i = 0; i < n; ++i) norm += static_cast<double>(P[i * r + c]) * P[i * r + c];
      const float div = static_cast<float>(std::sqrt(norm)) + 1e-8f;
      for (std::uint64_t i = 0; i < n; ++i) P[i * r + c] /= div;
      for (std::uint64_t c2 = c + 1; c2 < r; ++c2) {
        double dot = 0;
        for (std::uint64_t i = 0; i < n; ++i) dot += static_cast<double>(P[i * r + c]) * P[i * r + c2];
        const auto fd = static_cast<float>(dot);
        for (std::uint64_t i = 0; i < n; ++i) P[i * r + c2] -= fd * P[i * r + c];
      }
    }
  }
  float* mk_scratch(std::uint64_t len) {
    if (own_.size() < len) own_.resize(len);
    return own_.data();
  }

  device::Buffer<float> e_, mom_;
  std::vector<Matrix> mats_;
  struct Seg {
    std::uint64_t offset, size;
  };
  std::vector<Seg> dense_;
  std::uint64_t dense_count_ = 0;
  std::vector<float> pbuf_, qbuf_, q_, qown_, mk_, own_;
  std::vector<double> acc_;
  std::unique_ptr<coll::RingAllreduce> ring_p_, ring_q_;
};

}  // namespace

std::unique_ptr<Optimizer> make_powersgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  SPARCOL_CHECK_ARG(!e.on_device(), b.rank(), "powersgd runs on the host executor only");
  return std::make_unique<PowerSgd>(b, l, c, e);
}

}  // namespace sparcol::optim::detail

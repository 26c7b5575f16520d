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
// start every step draws a fresh Q from (seed, step, tensor). Written once on the dispatch layer
// (device/dispatch.hpp): on a device executor every buffer lives on the GPU and the products are
// lowrank.cu's kernels; on the host the same calls run their CPU twins. Each product element is a
// sum in double in a fixed order (ops.hpp), so the result is identical on every rank, run to run,
// and between the host and the device; the Q draws are made on the host and uploaded.
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

namespace ops = device::dispatch;

class PowerSgd final : public Optimizer {
 public:
  PowerSgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e)
      : Optimizer(b, l, c, dense_exchange(c.exchange), e),
        e_(make_buffer("error")),
        mom_(make_buffer("momentum")),
        mk_(make_buffer("powersgd M")) {
    std::uint64_t p_len = 0, q_len = 0, largest = 0;
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
      largest = std::max(largest, n * m);
    }
    pbuf_.assign(e, p_len + dense_count_, "powersgd P");
    qbuf_.assign(e, q_len, "powersgd Q sum");
    q_.assign(e, q_len, "powersgd Q");
    if (!c.powersgd_error_form_paper) {
      qown_.assign(e, q_len, "powersgd own Q");
      own_.assign(e, largest, "powersgd own approximation");
    }
    q_host_.resize(q_len);
    draw_all_q(0);
    device::Exec* ring_exec = e.on_device() ? &e : nullptr;
    if (pbuf_.size() > 0)
      ring_p_ =
          std::make_unique<coll::RingAllreduce>(b, pbuf_.size(), coll::RingAllreduce::kDefaultPieceBytes,
                                                coll::RingAllreduce::Algorithm::kAuto, ring_exec);
    if (qbuf_.size() > 0)
      ring_q_ =
          std::make_unique<coll::RingAllreduce>(b, qbuf_.size(), coll::RingAllreduce::kDefaultPieceBytes,
                                                coll::RingAllreduce::Algorithm::kAuto, ring_exec);
  }

  std::vector<StateBuffer> state() override {
    return {{"error", e_.span()}, {"momentum", mom_.span()}, {"q", q_.span()}};
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
    float* pb = pbuf_.data();
    float* qb = qbuf_.data();
    float* q = q_.data();
    // 1. M_k = G_k + E_k (matrices); the dense tensors' gradients go behind the P's.
    for (const auto& mt : mats_)
      ops::add_vectors(exec_, mk + mt.offset, g.data() + mt.offset, e + mt.offset, mt.n * mt.m);
    const std::uint64_t dense_at = pbuf_.size() - dense_count_;
    std::uint64_t pos = dense_at;
    for (const auto& s : dense_) {
      exec_.copy(pb + pos, g.data() + s.offset, s.size * sizeof(float));
      pos += s.size;
    }
    // 2. P = M_k Q, summed over ranks.
    if (!config_.powersgd_warm_start) draw_all_q(t + 1);
    for (const auto& mt : mats_)
      ops::lowrank_multiply(exec_, mk + mt.offset, mt.n, mt.m, q + mt.q_off, mt.r, pb + mt.p_off);
    auto t0 = Clock::now();
    if (ring_p_) ring_p_->run(pb, t);  // fingerprinted: ranks with another rank r fail
    comm_s += since(t0);
    // 3. Orthonormalise P; 4. Q_k = M_k^T P, averaged.
    for (const auto& mt : mats_) {
      ops::orthonormalize_columns(exec_, pb + mt.p_off, mt.n, mt.r);
      ops::lowrank_multiply_t(exec_, mk + mt.offset, mt.n, mt.m, pb + mt.p_off, mt.r, qb + mt.q_off);
    }
    if (qown_.size() > 0) exec_.copy(qown_.data(), qb, qbuf_.bytes());
    t0 = Clock::now();
    if (ring_q_) ring_q_->run(qb, t);
    comm_s += since(t0);
    ops::divide(exec_, qb, qb, kf, qbuf_.size());
    exec_.copy(q, qb, qbuf_.bytes());  // the next step's warm start
    // 5. Ghat = P Q^T into the aggregate; E_k <- M_k - Ghat (or M_k - P Q_k^T).
    float* gh = agg_.data();
    pos = dense_at;
    for (const auto& s : dense_) {
      ops::divide(exec_, gh + s.offset, pb + pos, kf, s.size);
      pos += s.size;
    }
    for (const auto& mt : mats_) {
      const float* P = pb + mt.p_off;
      const std::uint64_t len = mt.n * mt.m;
      ops::lowrank_outer(exec_, P, qb + mt.q_off, mt.n, mt.m, mt.r, gh + mt.offset);
      if (!ef) continue;
      if (qown_.size() == 0) {
        ops::sub_vectors(exec_, e + mt.offset, mk + mt.offset, gh + mt.offset, len);
      } else {
        ops::lowrank_outer(exec_, P, qown_.data() + mt.q_off, mt.n, mt.m, mt.r, own_.data());
        ops::sub_vectors(exec_, e + mt.offset, mk + mt.offset, own_.data(), len);
      }
    }
    exec_.synchronize();  // the compression time covers the queued device work too
    const double step_s = since(t_step);
    // 6. Weight decay on the aggregate, then the paper's momentum: m <- lambda m + Ghat,
    //    x <- x - eta (Ghat + m).
    ops::powersgd_apply(exec_, mom_.data(), x.data(), gh, static_cast<float>(config_.momentum),
                        static_cast<float>(lr), static_cast<float>(config_.weight_decay), n_);
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
  // Every matrix's Q for `step` (0: the start), N(0, 1) from (seed, step, tensor), drawn on the host
  // and uploaded.
  void draw_all_q(std::uint64_t step) {
    for (const auto& mt : mats_) {
      CounterRng rng(config_.exchange.seed ^ (step * 0x9E3779B97F4A7C15ull), kStreamPowerSgd, mt.id);
      for (std::uint64_t i = 0; i < mt.m * mt.r; ++i)
        q_host_[mt.q_off + i] = static_cast<float>(rng.normal());
    }
    if (!q_host_.empty()) exec_.upload(q_.data(), q_host_.data(), q_host_.size() * sizeof(float));
  }

  device::Buffer<float> e_, mom_, mk_;
  std::vector<Matrix> mats_;
  struct Seg {
    std::uint64_t offset, size;
  };
  std::vector<Seg> dense_;
  std::uint64_t dense_count_ = 0;
  device::Buffer<float> pbuf_, qbuf_, q_, qown_, own_;
  std::vector<float> q_host_;  // the draws, before the upload
  std::unique_ptr<coll::RingAllreduce> ring_p_, ring_q_;
};

}  // namespace

std::unique_ptr<Optimizer> make_powersgd(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e) {
  return std::make_unique<PowerSgd>(b, l, c, e);
}

}  // namespace sparcol::optim::detail

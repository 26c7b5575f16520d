// CSER with momentum (ALGORITHMS.md 8). x is the synchronized model xh (replicated); worker k trains
// on xh + r_k.
//   g_k = grad f(xh + r_k);  m_k <- beta*m_k + g_k;  delta_k = eta*m_k
//   partial sync: c_k = C1(delta_k); xh <- xh - mean c; r_k <- r_k - (delta_k - c_k)
//   error reset every H steps ((t+1) mod H == 0): c2_k = C2(r_k); xh <- xh + mean c2; r_k <- r_k - c2_k
// C1 named "zero" sends nothing (step 2 purely local: r_k <- r_k - delta_k).
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

ExchangeConfig with_compressor(const ExchangeConfig& base, const compress::CompressorConfig& c) {
  ExchangeConfig e = base;
  e.compressor = c;
  return e;
}

class Cser final : public Optimizer {
 public:
  Cser(comm::Backend& b, const Layout& l, const OptimConfig& c)
      : Optimizer(b, l, c,
                  c.cser_c1.name == "zero" ? dense_exchange(c.exchange) : with_compressor(c.exchange, c.cser_c1)),
        c1_zero_(c.cser_c1.name == "zero"),
        reset_(b, l, with_compressor(c.exchange, c.cser_c2)),
        r_(n_),
        m_(n_),
        delta_(n_) {}

  std::span<const float> gradient_point(std::span<const float> x, double) override {
    z_.resize(n_);
    for (std::uint64_t i = 0; i < n_; ++i) z_[i] = x[i] + r_[i];
    return z_;
  }

  std::vector<StateBuffer> state() override { return {{"local_residual", r_}, {"momentum", m_}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    for (std::uint64_t i = 0; i < n_; ++i) {
      m_[i] = beta * m_[i] + g[i];
      delta_[i] = eta * m_[i];
    }
    CommStats st;
    if (c1_zero_) {
      for (std::uint64_t i = 0; i < n_; ++i) r_[i] -= delta_[i];
    } else {
      st = ex_.finish(delta_, agg_);  // delta_ <- delta_k - c_k
      for (std::uint64_t i = 0; i < n_; ++i) {
        x[i] -= agg_[i];
        r_[i] -= delta_[i];
      }
    }
    const auto H = static_cast<std::uint64_t>(config_.cser_period);
    if ((t + 1) % H == 0) {
      // Error reset. The step's NaN verdict was taken already; this begin() only agrees on the call.
      reset_.begin(t, false);
      st.add(reset_.finish(r_, agg_));  // r_ <- r_k - c2_k
      for (std::uint64_t i = 0; i < n_; ++i) x[i] += agg_[i];
    }
    st.dense_elements = static_cast<double>(static_cast<std::uint64_t>(backend_.size() + 1) * n_);  // once per step
    return st;
  }

 private:
  bool c1_zero_;
  Exchange reset_;
  std::vector<float> r_, m_, delta_;
};

}  // namespace

std::unique_ptr<Optimizer> make_cser(comm::Backend& b, const Layout& l, const OptimConfig& c) {
  return std::make_unique<Cser>(b, l, c);
}

}  // namespace sparcol::optim::detail

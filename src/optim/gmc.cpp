// GMC and GMC+ (ALGORITHMS.md 5.3 all-reduce form, 6). Residual u_k in gradient units; global
// momentum m replicated on every rank (m_t = (x_{t-1} - x_t) / eta_{t-1}).
//   [GMC+: gradient at z_k = x_t - alpha*eta_t*u_k]
//   v_k = u_k + g_k + beta*m;  s_k = S(v_k);  u_k <- v_k - s_k
//   a_t = mean_k s_k (rank order, divided by K once);  x <- x - eta_t*a_t;  m <- a_t
// Without compression u = 0 and this is DMSGD with global momentum, exactly.
#include <utility>

#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

class Gmc final : public Optimizer {
 public:
  Gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool plus)
      : Optimizer(b, l, c, c.exchange), plus_(plus), u_(n_), m_(n_) {
    alpha_ = plus ? (c.alpha >= 0 ? c.alpha : 0.5) : 0.0;
  }

  std::span<const float> gradient_point(std::span<const float> x, double lr) override {
    if (!plus_ || alpha_ == 0.0) return x;
    z_.resize(n_);
    const auto c = static_cast<float>(alpha_ * lr);
    for (std::uint64_t i = 0; i < n_; ++i) z_[i] = x[i] - c * u_[i];
    return z_;
  }

  std::vector<StateBuffer> state() override { return {{"residual", u_}, {"global_momentum", m_}}; }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    for (std::uint64_t i = 0; i < n_; ++i) u_[i] += g[i] + beta * m_[i];  // u_ now holds v_k
    const CommStats st = ex_.finish(u_, agg_);                          // u_ <- v_k - S(v_k)
    std::swap(m_, agg_);                                                // m <- a_t
    for (std::uint64_t i = 0; i < n_; ++i) x[i] -= eta * m_[i];
    return st;
  }

 private:
  bool plus_;
  std::vector<float> u_, m_;
};

}  // namespace

std::unique_ptr<Optimizer> make_gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, bool plus) {
  return std::make_unique<Gmc>(b, l, c, plus);
}

}  // namespace sparcol::optim::detail

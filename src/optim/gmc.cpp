// GMC and GMC+ (ALGORITHMS.md 5.3 all-reduce form, 6). Residual u_k in gradient units; global
// momentum m replicated on every rank (m_t = (x_{t-1} - x_t) / eta_{t-1}).
//   [GMC+: gradient at z_k = x_t - alpha*eta_t*u_k]
//   v_k = u_k + g_k + beta*m;  s_k = S(v_k);  u_k <- v_k - s_k
//   a_t = mean_k s_k (rank order, divided by K once);  x <- x - eta_t*a_t;  m <- a_t
// Without compression u = 0 and this is DMSGD with global momentum, exactly.
//
// m is the Exchange's aggregate itself: with top-k or RBGS it has at most K*k non-zeros, so on the
// host the message pass reads m only there (gmc_accumulate_sparse) and x moves only there
// (apply_aggregate). Passes over d per step: the message (u, g read, u written), the compressor's.
#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class Gmc final : public Optimizer {
 public:
  Gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool plus)
      : Optimizer(b, l, c, c.exchange, e), plus_(plus), u_(make_buffer("residual")) {
    alpha_ = plus ? (c.alpha >= 0 ? c.alpha : 0.5) : 0.0;
  }

  std::span<const float> gradient_point(std::span<const float> x, double lr) override {
    if (!plus_ || alpha_ == 0.0) return x;
    if (z_.size() != n_) z_ = make_buffer("gradient point");
    ops::detached_point(exec_, z_.data(), x.data(), u_.data(), static_cast<float>(alpha_ * lr), n_);
    exec_.synchronize();
    return z_.span();
  }

  std::vector<StateBuffer> state() override {
    agg_.forget_support();  // the caller may overwrite m
    return {{"residual", u_.span()}, {"global_momentum", agg_.values()}};
  }

 protected:
  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const device::GradientInput gi = gradient(g, x, lr);
    const Aggregate& m = agg_;  // a_{t-1}
    if (m.dense()) {
      ops::gmc_accumulate(exec_, u_.data(), m.data(), gi, beta, n_, sparcol::Block{},
                          nullptr);  // u holds v_k
    } else {
      ops::gmc_accumulate_sparse(exec_, u_.data(), m.data(), m.support().data(), m.support().size(), gi, beta,
                                 n_);
    }
    const CommStats st = ex_.finish(u_.span(), agg_);  // u <- v_k - S(v_k); m <- a_t
    apply_aggregate(exec_, x.data(), agg_, static_cast<float>(lr));
    return st;
  }

 private:
  bool plus_;
  device::Buffer<float> u_;
};

}  // namespace

std::unique_ptr<Optimizer> make_gmc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                    bool plus) {
  return std::make_unique<Gmc>(b, l, c, e, plus);
}

}  // namespace sparcol::optim::detail

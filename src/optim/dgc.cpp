// DGC (ALGORITHMS.md 4): momentum correction, local gradient clipping, optional momentum factor
// masking and density warm-up; the learning rate is applied outside, to the aggregate.
//   [clip g_k to norm G/sqrt(K)]
//   u_k <- beta*u_k + g_k;  v_k <- v_k + u_k        (Nesterov: u <- beta*(u + g); v <- v + u + g)
//   s_k = C(v_k), mask M_k;  v_k <- v_k (1 - M_k);  [mfm: u_k <- u_k (1 - M_k)]
//   x <- x - eta * mean_k s_k                         (wd_outside: x <- x - eta*(mean s + wd*x))
#include <algorithm>
#include <cmath>

#include "methods.hpp"

namespace sparcol::optim::detail {

namespace {

namespace ops = device::dispatch;

class Dgc final : public Optimizer {
 public:
  Dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e, bool mfm)
      : Optimizer(b, l, c, c.exchange, e),
        mfm_(mfm),
        target_density_(c.exchange.compressor.density),
        u_(make_buffer("momentum")),
        v_(make_buffer("velocity")) {
    if (config_.clip_norm > 0 && config_.weight_decay != 0 && !config_.wd_outside)
      geff_ = make_buffer("gradient with weight decay");
  }

  std::vector<StateBuffer> state() override { return {{"momentum", u_.span()}, {"velocity", v_.span()}}; }

 protected:
  void before_step(double epoch) override {
    const int w = config_.warmup_epochs;
    if (w <= 0) return;
    // DGC code: coeff = rho^(1/(W+1)); density in epoch e < W is max(coeff^(e+1), rho).
    const double rho = target_density_;
    const auto e = static_cast<int>(std::floor(epoch));
    const double d = e < w ? std::max(std::pow(std::pow(rho, 1.0 / (w + 1)), e + 1), rho) : rho;
    if (d != ex_.density()) ex_.set_density(d);
  }

  CommStats do_step(std::span<float> x, std::span<const float> g, std::uint64_t, double lr) override {
    const auto beta = static_cast<float>(config_.momentum);
    const auto eta = static_cast<float>(lr);
    device::GradientInput gi = gradient(g, x, lr);
    if (config_.clip_norm > 0) {
      // Local clipping to G / sqrt(K) of the gradient after weight decay: every worker uses the
      // global threshold scaled by K^(-1/2).
      const float* gw = g.data();
      if (gi.wd != 0.0f) {
        // g + wd * z, materialised for its norm: x - c*d with c = -wd is exactly g + wd*z.
        ops::detached_point(exec_, geff_.data(), g.data(), gi.z, -gi.wd, n_);
        gw = geff_.data();
      }
      const double norm = std::sqrt(ops::norm_squares(exec_, gw, n_));
      const double limit = config_.clip_norm / std::sqrt(static_cast<double>(backend_.size()));
      gi.scale = norm > limit ? static_cast<float>(limit / norm) : 1.0f;
    }
    ops::dgc_accumulate(exec_, u_.data(), v_.data(), gi, beta, config_.nesterov, false, n_, sparcol::Block{},
                        nullptr);
    const CommStats st = ex_.finish(v_.span(), agg_);  // v_ <- v_ (1 - M)
    if (mfm_) ex_.zero_sent(u_.span());
    const float wd = wd_outside();
    if (wd != 0.0f) {
      ops::apply_update(exec_, x.data(), agg_.data(), eta, wd, n_);
    } else {
      apply_aggregate(exec_, x.data(), agg_, eta);
    }
    return st;
  }

 private:
  bool mfm_;
  double target_density_;
  device::Buffer<float> u_, v_, geff_;
};

}  // namespace

std::unique_ptr<Optimizer> make_dgc(comm::Backend& b, const Layout& l, const OptimConfig& c, Exec& e,
                                    bool mfm) {
  return std::make_unique<Dgc>(b, l, c, e, mfm);
}

}  // namespace sparcol::optim::detail
